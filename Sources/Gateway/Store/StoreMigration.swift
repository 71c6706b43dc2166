import Foundation

/// Copies a whole record from one store to another (`sluice store migrate`): sessions with
/// their seals, every event, the control chain, the reviews and the runtime connections, record for record, so the
/// copy verifies with the same public key. The target must be empty: two chains are never
/// merged.
public enum StoreMigration {
    public struct Report: Sendable, Equatable, Codable {
        public var sessions = 0
        public var events = 0
        public var controlEvents = 0
        public var reviews = 0
        public var connections = 0
    }

    public struct Refusal: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Pages read at a time; the target is written a page at a time.
    static let page = 1_000
    /// Reviews copied at most (the store keeps a bounded number in practice).
    static let maximumReviews = 10_000_000

    public static func copy(from source: any Store, to target: any Store,
                            progress: (Report) -> Void = { _ in }) throws -> Report {
        guard try target.allSessionIDs().isEmpty, try target.lastControl() == nil,
              try target.reviews(status: nil, limit: 1).isEmpty else {
            throw Refusal(description: "the target store already holds a record; migrate into an empty one")
        }
        var report = Report()
        for id in try source.allSessionIDs() {
            guard let session = try source.session(id: id) else { continue }
            try target.createSession(session)
            var after = -1
            while true {
                let events = try source.events(session: id, after: after, limit: page)
                guard let last = events.last else { break }
                try target.appendEvents(events)
                report.events += events.count
                after = last.seq
            }
            try target.updateSession(session)
            report.sessions += 1
            if report.sessions % 100 == 0 { progress(report) }
        }
        var after = -1
        while true {
            let events = try source.controlEvents(after: after, limit: page)
            guard let last = events.last else { break }
            for event in events { try target.appendControl(event) }
            report.controlEvents += events.count
            after = last.seq
        }
        for review in try source.reviews(status: nil, limit: maximumReviews) {
            try target.saveReview(review)
            report.reviews += 1
        }
        for connection in try source.runtimeConnections() {
            try target.putRuntimeConnection(connection, create: true)
            report.connections += 1
        }
        try target.checkpoint()
        progress(report)
        return report
    }
}
