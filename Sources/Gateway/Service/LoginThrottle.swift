import Adapters
import Foundation

/// Failed-login throttling, per source address and per claimed user (issue 14, finding 3).
///
/// Each key (a source address, a claimed user) counts its failures in a window; at the limit it is
/// locked out for a while, doubling at each new lockout up to a ceiling, and attempts while locked
/// are refused before any token is checked. The record gets counts, not one row per attempt: the
/// first failure of a window and each lockout are control events, carrying how many attempts went
/// unrecorded since the previous one. A pure value: the caller passes the time and keeps it in a
/// lock.
struct LoginThrottle {
    struct Limits: Sendable, Equatable {
        /// Failures from one source address in one window before it is locked out.
        var perSource = 10
        /// Failures for one claimed user (any source) in one window before it is locked out.
        var perUser = 20
        var window: Duration = .seconds(60)
        var firstLockout: Duration = .seconds(5)
        var maximumLockout: Duration = .seconds(300)
        /// Keys tracked at once; past it, keys with nothing to remember are dropped, then new ones
        /// are not tracked (counted in `untracked`).
        var maximumKeys = 10_000
    }

    enum Key: Hashable, Sendable {
        /// A client's address: locked out at its limit, refused before its token is checked.
        /// The admin listener (API and console) counts its own failures per address: an outsider
        /// hammering a data listener does not lock the operators out of the tool that stops it.
        case source(String, admin: Bool = false)
        /// The unverified `sub` of a failed token: at its limit, further failures for it are
        /// refused and counted, but a token that verifies still gets in (anyone can write a
        /// token naming someone else, so this lockout must not lock the real user out).
        case user(String)
        /// Failures with no address or claimed user (the admin API, the console), counted under
        /// the purpose so they are not one event each; never locked out.
        case unattributed(String)

        var field: (String, String) {
            switch self {
            case .source(let address, _): ("source", address)
            case .user(let name): ("user_claimed", name)
            case .unattributed(let purpose): ("source", "unknown (\(purpose))")
            }
        }
    }

    /// What to write to the control chain after a failure.
    struct Event: Equatable, Sendable {
        enum Kind: Equatable, Sendable { case failed, lockedOut(seconds: Int64) }
        var kind: Kind
        var key: Key
        /// Failures in this window when the event was made.
        var failures: Int
        /// Attempts (failures and refusals) since the key's previous event, not recorded one by one.
        var unrecorded: Int
    }

    private struct Entry {
        var windowStart: Int64
        var failures = 0
        var lockedUntil: Int64 = 0
        var nextLockout: Int64
        var unrecorded = 0
    }

    let limits: Limits
    private var entries: [Key: Entry] = [:]
    private(set) var untracked = 0

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    private static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }

    /// Seconds until `keys` may try again, or nil when none is locked out. A refusal is counted
    /// against the locked key (reported with its next event).
    mutating func lockedOut(_ keys: [Key], now: Int64) -> Int64? {
        var wait: Int64?
        for key in keys {
            guard var entry = entries[key], entry.lockedUntil > now else { continue }
            entry.unrecorded += 1
            entries[key] = entry
            let seconds = (entry.lockedUntil - now + 999_999) / 1_000_000
            wait = max(wait ?? 0, seconds)
        }
        return wait
    }

    /// Seconds until `key` may try again, or nil; counts nothing.
    func remainingLockout(_ key: Key, now: Int64) -> Int64? {
        guard let entry = entries[key], entry.lockedUntil > now else { return nil }
        return (entry.lockedUntil - now + 999_999) / 1_000_000
    }

    /// Counts a failed login for each key; returns what to record. A key already locked out
    /// only counts it (reported with its next event).
    mutating func failed(_ keys: [Key], now: Int64) -> [Event] {
        var events: [Event] = []
        for key in keys {
            guard var entry = entries[key] ?? admit(key, now: now) else {
                untracked += 1
                continue
            }
            if entry.lockedUntil > now {
                entry.unrecorded += 1
                entries[key] = entry
                continue
            }
            if now - entry.windowStart >= Self.micros(limits.window) {
                entry.windowStart = now
                entry.failures = 0
                // A key that stayed quiet for a whole maximum lockout starts again from the first.
                if now - entry.lockedUntil >= Self.micros(limits.maximumLockout) { entry.nextLockout = Self.micros(limits.firstLockout) }
            }
            entry.failures += 1
            let limit: Int
            switch key {
            case .source: limit = limits.perSource
            case .user: limit = limits.perUser
            case .unattributed: limit = Int.max
            }
            if entry.failures >= limit {
                entry.lockedUntil = now + entry.nextLockout
                events.append(Event(kind: .lockedOut(seconds: entry.nextLockout / 1_000_000), key: key,
                                    failures: entry.failures, unrecorded: entry.unrecorded))
                entry.nextLockout = min(entry.nextLockout * 2, Self.micros(limits.maximumLockout))
                entry.failures = 0
                entry.windowStart = now
                entry.unrecorded = 0
            } else if entry.failures == 1 {
                events.append(Event(kind: .failed, key: key, failures: 1, unrecorded: entry.unrecorded))
                entry.unrecorded = 0
            } else {
                entry.unrecorded += 1
            }
            entries[key] = entry
        }
        return events
    }

    /// A successful login clears the user's count (the source keeps its lockout history: one
    /// valid token does not excuse a spray from the same address).
    mutating func succeeded(_ keys: [Key]) {
        for key in keys {
            if case .user = key { entries[key] = nil }
        }
    }

    var trackedKeys: Int { entries.count }

    private mutating func admit(_ key: Key, now: Int64) -> Entry? {
        if entries.count >= limits.maximumKeys {
            let window = Self.micros(limits.window)
            entries = entries.filter { _, entry in entry.lockedUntil > now || now - entry.windowStart < window || entry.unrecorded > 0 }
        }
        guard entries.count < limits.maximumKeys else { return nil }
        return Entry(windowStart: now, nextLockout: Self.micros(limits.firstLockout))
    }

    /// The unverified subject of a JWT (`sub`), to count failures per claimed user; nil for
    /// anything that does not decode. Never trusted for anything else.
    static func claimedUser(_ token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1].count <= 8192 else { return nil }
        var text = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let subject = object["sub"] as? String, !subject.isEmpty else { return nil }
        return String(subject.prefix(100))
    }

    /// The address part of a peer written `HOST:PORT` (``HostPort/peer(_:)``).
    static func source(ofPeer peer: String) -> String? {
        HostPort(peer)?.host
    }
}
