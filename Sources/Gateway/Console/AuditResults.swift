import Adapters
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// The last full audit verification, kept for the audit page; run on demand.
actor AuditResults {
    struct Day: Sendable {
        var day: String
        var sessions = 0
        var ok = 0
        var unsealed = 0
        var problems: [String] = []
    }

    struct Summary: Sendable {
        var ranAt: String
        var ok: Bool
        var sessions: Int
        var events: Int
        var controlEvents: Int
        var problems: [String]
        var days: [Day]

        var context: [String: Any] {
            [
                "ran_at": ranAt, "ok": ok, "sessions": sessions, "events": events, "control_events": controlEvents,
                "problems": problems, "has_problems": !problems.isEmpty,
                "days": days.map { day -> [String: Any] in
                    ["day": day.day, "sessions": day.sessions, "ok": day.ok, "unsealed": day.unsealed,
                     "intact": day.ok == day.sessions, "problems": day.problems]
                },
            ]
        }
    }

    private var last: Summary?

    func latest(services: AdminServices, actor: String) throws -> Summary {
        if let last { return last }
        return try run(services: services, actor: actor)
    }

    func run(services: AdminServices, actor: String) throws -> Summary {
        let verifier = services.audit.auditVerifier()
        var days: [String: Day] = [:]
        var total = AuditReport()
        for id in try services.records.allSessionIDs().suffix(20_000) {
            guard let session = try services.records.session(id: id) else { continue }
            var report = AuditReport()
            try verifier.verifySession(id: id, into: &report)
            let key = String(Console.time(session.startedAt).prefix(10))
            var day = days[key] ?? Day(day: key)
            day.sessions += 1
            if report.ok { day.ok += 1 }
            day.unsealed += report.unsealed.count
            day.problems += report.problems.prefix(5).map(\.description)
            days[key] = day
            total.sessionsChecked += report.sessionsChecked
            total.eventsChecked += report.eventsChecked
            total.problems += report.problems
        }
        // The control chain (logins, reviews, config reloads, verifications) is checked whole.
        var control = AuditReport()
        try verifier.verifyControl(into: &control)
        total.problems += control.problems
        services.audit.note("audit.verified", actor: actor, ["ok": String(total.ok), "problems": String(total.problems.count)])
        let summary = Summary(ranAt: Console.time(services.clock.nowMicros()), ok: total.ok, sessions: total.sessionsChecked,
                              events: total.eventsChecked, controlEvents: control.controlEventsChecked,
                              problems: total.problems.prefix(50).map(\.description),
                              days: days.values.sorted { $0.day > $1.day })
        last = summary
        return summary
    }
}
