import MaskEngine
import Foundation
import Synchronization

/// Prometheus counters, gauges and one latency histogram. Label values are names and codes
/// (protocols, detectors, outcomes), never payload. At most `maximumSeries` series are kept.
public final class Metrics: Sendable {
    private struct Key: Hashable {
        var name: String
        var labels: [String: String]
    }

    private struct State {
        var values: [Key: Double] = [:]
        /// Series counted through handles (``counter(_:labels:)``): added to without the lock.
        var counters: [Key: Counter] = [:]
    }

    /// One integer series that hot paths hold on to: adding is one atomic add, no lock and no
    /// lookup by labels (a session resolves its series once, not per request).
    public final class Counter: Sendable {
        fileprivate let value = Atomic<Int>(0)
        public func add(_ amount: Int) { value.wrappingAdd(amount, ordering: .relaxed) }
        public var current: Int { value.load(ordering: .relaxed) }
    }

    static let bounds: [Double] = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1]
    public static let maximumSeries = 10_000
    private let state = Locked(State())
    /// The masking latency histogram, lock-free: per-bound counts (cumulative, as exposed), the
    /// count, and the sum in nanoseconds.
    private let buckets: [Counter] = Metrics.bounds.map { _ in Counter() }
    private let histogramCount = Counter()
    private let histogramNanos = Counter()

    public init() {}

    public func increment(_ name: String, labels: [String: String]) { add(name, 1, labels: labels) }

    public func add(_ name: String, _ amount: Double, labels: [String: String]) {
        state.withLock { state in
            let key = Key(name: name, labels: labels)
            if state.values[key] == nil && state.values.count + state.counters.count >= Self.maximumSeries { return }
            state.values[key, default: 0] += amount
        }
    }

    /// The handle of an integer series. Past `maximumSeries` the handle still counts but is not
    /// exposed (as ``add(_:_:labels:)`` drops new series then).
    public func counter(_ name: String, labels: [String: String]) -> Counter {
        state.withLock { state in
            let key = Key(name: name, labels: labels)
            if let counter = state.counters[key] { return counter }
            let counter = Counter()
            if state.values.count + state.counters.count < Self.maximumSeries { state.counters[key] = counter }
            return counter
        }
    }

    public func value(_ name: String, labels: [String: String] = [:]) -> Double {
        state.withLock { state in
            let key = Key(name: name, labels: labels)
            return (state.values[key] ?? 0) + Double(state.counters[key]?.current ?? 0)
        }
    }

    /// Records one masking latency.
    public func observe(_ name: String, _ latency: Duration) {
        let seconds = Double(latency.components.seconds) + Double(latency.components.attoseconds) / 1e18
        for (index, bound) in Self.bounds.enumerated() where seconds <= bound { buckets[index].add(1) }
        histogramCount.add(1)
        histogramNanos.add(Int(latency.components.seconds) * 1_000_000_000 + Int(latency.components.attoseconds / 1_000_000_000))
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
        let values = state.withLock { state in
            state.counters.reduce(into: state.values) { values, entry in values[entry.key, default: 0] += Double(entry.value.current) }
        }
        let buckets = buckets.map(\.current)
        let count = histogramCount.current
        let sum = Double(histogramNanos.current) / 1e9
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
