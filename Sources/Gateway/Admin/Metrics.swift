import MaskEngine
import Foundation

/// Prometheus counters, gauges and one latency histogram. Label values are names and codes
/// (protocols, detectors, outcomes), never payload. At most `maximumSeries` series are kept.
public final class Metrics: Sendable {
    private struct Key: Hashable {
        var name: String
        var labels: [String: String]
    }

    private struct State {
        var values: [Key: Double] = [:]
        var buckets: [Int] = Array(repeating: 0, count: Metrics.bounds.count)
        var histogramCount = 0
        var histogramSum = 0.0
    }

    static let bounds: [Double] = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1]
    public static let maximumSeries = 10_000
    private let state = Locked(State())

    public init() {}

    public func increment(_ name: String, labels: [String: String]) { add(name, 1, labels: labels) }

    public func add(_ name: String, _ amount: Double, labels: [String: String]) {
        state.withLock { state in
            let key = Key(name: name, labels: labels)
            if state.values[key] == nil && state.values.count >= Self.maximumSeries { return }
            state.values[key, default: 0] += amount
        }
    }

    public func value(_ name: String, labels: [String: String] = [:]) -> Double {
        state.withLock { $0.values[Key(name: name, labels: labels)] ?? 0 }
    }

    /// Records one masking latency in seconds.
    public func observe(_ name: String, _ seconds: Double) {
        state.withLock { state in
            for (index, bound) in Self.bounds.enumerated() where seconds <= bound { state.buckets[index] += 1 }
            state.histogramCount += 1
            state.histogramSum += seconds
        }
    }

    private static let help: [String: (String, String)] = [
        "sluice_sessions_open": ("gauge", "Sessions open now."),
        "sluice_sessions_total": ("counter", "Sessions opened, by protocol."),
        "sluice_commands_total": ("counter", "Commands decided, by outcome (allowed, blocked, reviewed) and protocol."),
        "sluice_bytes_scanned_total": ("counter", "Bytes scanned by the masking engine, by protocol."),
        "sluice_values_masked_total": ("counter", "Values masked, by detector."),
        "sluice_logins_failed_total": ("counter", "Rejected tokens, by error code."),
        "sluice_access_denied_total": ("counter", "Sessions refused for lack of access, by connection."),
        "sluice_logins_throttled_total": ("counter", "Logins refused because the source address or claimed user is locked out, by purpose."),
        "sluice_sessions_stopped_unrecorded_total": ("counter", "Sessions stopped because their record could not be written, by protocol."),
        "sluice_upstream_failures_total": ("counter", "Upstream connections that failed, by protocol."),
    ]

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// The Prometheus text exposition format.
    public func render() -> String {
        let (values, buckets, count, sum) = state.withLock { ($0.values, $0.buckets, $0.histogramCount, $0.histogramSum) }
        var lines: [String] = []
        let grouped = Dictionary(grouping: values, by: { $0.key.name })
        var names = Set(grouped.keys)
        names.insert("sluice_sessions_open")
        for name in names.sorted() {
            if let (type, help) = Self.help[name] {
                lines.append("# HELP \(name) \(help)")
                lines.append("# TYPE \(name) \(type)")
            }
            let series = grouped[name] ?? [(key: Key(name: name, labels: [:]), value: 0)]
            for (key, value) in series.sorted(by: { $0.key.labels.description < $1.key.labels.description }) {
                let labels = key.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Metrics.escape($0.value))\"" }.joined(separator: ",")
                lines.append(labels.isEmpty ? "\(name) \(format(value))" : "\(name){\(labels)} \(format(value))")
            }
        }
        lines.append("# HELP sluice_masking_latency_seconds Time spent masking one chunk or value.")
        lines.append("# TYPE sluice_masking_latency_seconds histogram")
        for (index, bound) in Self.bounds.enumerated() {
            lines.append("sluice_masking_latency_seconds_bucket{le=\"\(bound)\"} \(buckets[index])")
        }
        lines.append("sluice_masking_latency_seconds_bucket{le=\"+Inf\"} \(count)")
        lines.append("sluice_masking_latency_seconds_sum \(sum)")
        lines.append("sluice_masking_latency_seconds_count \(count)")
        return lines.joined(separator: "\n") + "\n"
    }

    private func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
