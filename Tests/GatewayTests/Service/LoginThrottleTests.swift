import Adapters
import Foundation
import Testing
@testable import Gateway

@Suite struct LoginThrottleTests {
    let second: Int64 = 1_000_000
    let source = LoginThrottle.Key.source("192.0.2.7")

    func throttle(perSource: Int = 3, perUser: Int = 5) -> LoginThrottle {
        var limits = LoginThrottle.Limits()
        limits.perSource = perSource
        limits.perUser = perUser
        return LoginThrottle(limits: limits)
    }

    @Test func aSourceIsLockedOutAtItsLimitAndFreedWhenTheLockoutEnds() {
        var throttle = throttle()
        #expect(throttle.lockedOut([source], now: 0) == nil)
        _ = throttle.failed([source], now: 0)
        _ = throttle.failed([source], now: 1)
        #expect(throttle.lockedOut([source], now: 2) == nil)
        let events = throttle.failed([source], now: 2)
        #expect(events.map(\.kind) == [.lockedOut(seconds: 5)])
        #expect(throttle.lockedOut([source], now: 3) == 5)
        #expect(throttle.lockedOut([source], now: 4 * second + 2) == 1)
        #expect(throttle.lockedOut([source], now: 5 * second + 2) == nil)
        // Another address is not affected.
        #expect(throttle.lockedOut([.source("192.0.2.8")], now: 3) == nil)
    }

    @Test func eachLockoutDoublesUpToTheCeiling() {
        var throttle = throttle(perSource: 1)
        var now: Int64 = 0
        var seconds: [Int64] = []
        for _ in 0..<10 {
            for event in throttle.failed([source], now: now) {
                if case .lockedOut(let length) = event.kind { seconds.append(length) }
            }
            now += seconds.last! * second
        }
        #expect(seconds == [5, 10, 20, 40, 80, 160, 300, 300, 300, 300])
    }

    @Test func failuresAreRecordedAsCountsNotOneEventPerAttempt() {
        var throttle = throttle(perSource: 10)
        var events: [LoginThrottle.Event] = []
        for attempt in 0..<1000 {
            let now = Int64(attempt) * 1000
            if throttle.lockedOut([source], now: now) != nil { continue }
            events += throttle.failed([source], now: now)
        }
        // One event for the first failure, one for the lockout; every other attempt is counted in them.
        #expect(events.count == 2)
        #expect(events[0].kind == .failed)
        #expect(events[1].kind == .lockedOut(seconds: 5))
        #expect(events[1].failures == 10)
        #expect(events[1].unrecorded == 8)   // the 2nd to the 9th
        // Refusals while locked are counted and reported with the next event.
        let later = throttle.failed([source], now: 6 * second)
        #expect(later.first?.unrecorded == 990)
    }

    @Test func theWindowForgetsOldFailures() {
        var throttle = throttle()
        _ = throttle.failed([source], now: 0)
        _ = throttle.failed([source], now: 1)
        let events = throttle.failed([source], now: 61 * second)
        #expect(events.map(\.kind) == [.failed])
        #expect(throttle.lockedOut([source], now: 61 * second + 1) == nil)
    }

    @Test func aClaimedUserIsLockedOutAcrossSourcesAndASuccessClearsIt() {
        var throttle = throttle(perSource: 100, perUser: 3)
        let user = LoginThrottle.Key.user("mallory")
        for index in 0..<2 { _ = throttle.failed([.source("10.0.0.\(index)"), user], now: Int64(index)) }
        throttle.succeeded([.source("10.0.0.9"), user])
        _ = throttle.failed([.source("10.0.0.3"), user], now: 3)
        #expect(throttle.lockedOut([.source("10.0.0.4"), user], now: 4) == nil)
        for index in 4..<6 { _ = throttle.failed([.source("10.0.0.\(index)"), user], now: Int64(index)) }
        #expect(throttle.lockedOut([.source("10.0.0.99"), user], now: 7) == 5)
    }

    @Test func theTableOfKeysIsBounded() {
        var limits = LoginThrottle.Limits()
        limits.maximumKeys = 100
        var throttle = LoginThrottle(limits: limits)
        for index in 0..<1000 { _ = throttle.failed([.source("10.0.\(index / 256).\(index % 256)")], now: Int64(index)) }
        #expect(throttle.trackedKeys <= 100)
        #expect(throttle.untracked > 0)
        // Once the window has passed, quiet keys make room again.
        _ = throttle.failed([.source("203.0.113.1")], now: 120 * second)
        #expect(throttle.lockedOut([.source("203.0.113.1")], now: 120 * second) == nil)
        #expect(throttle.trackedKeys <= 100)
    }

    @Test func theClaimedUserIsTheUnverifiedSubjectOfAJWT() {
        func jwt(_ payload: String) -> String {
            let body = Data(payload.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            return "eyJhbGciOiJFZERTQSJ9.\(body).c2ln"
        }
        #expect(LoginThrottle.claimedUser(jwt(#"{"sub":"alice","groups":["eng"]}"#)) == "alice")
        #expect(LoginThrottle.claimedUser(jwt(#"{"groups":["eng"]}"#)) == nil)
        #expect(LoginThrottle.claimedUser("not a token") == nil)
        #expect(LoginThrottle.claimedUser("a.b.c") == nil)
    }

    @Test func theSourceIsTheHostOfThePeer() {
        #expect(LoginThrottle.source(ofPeer: "127.0.0.1:5432") == "127.0.0.1")
        #expect(LoginThrottle.source(ofPeer: "[::1]:5432") == "::1")
        #expect(LoginThrottle.source(ofPeer: "?") == nil)
    }
}

@Suite struct ConnectionAdmissionTests {
    @Test func connectionsStillLoggingInAreBoundedPerSourceAndInAll() {
        let admission = ConnectionAdmission(limits: .init(perSource: 2, total: 3))
        #expect(admission.admit("a") == nil)
        #expect(admission.admit("a") == nil)
        #expect(admission.admit("a") == .source)
        #expect(admission.admit("b") == nil)
        #expect(admission.admit("c") == .total)
        admission.release("a")
        #expect(admission.admit("c") == nil)
        #expect(admission.counts.waiting == 3)
        #expect(admission.counts.refused == 2)
        for source in ["a", "b", "c"] { admission.release(source) }
        #expect(admission.counts.waiting == 0)
        // A release for a source that holds nothing changes nothing.
        admission.release("zzz")
        #expect(admission.counts.waiting == 0)
    }
}

/// The throttle as the runtime applies it to real tokens.
@Suite struct RuntimeLoginThrottleTests {
    @Test func aSourceOverItsLimitIsRefusedBeforeItsTokenIsChecked() async throws {
        let gateway = try TestGateway(extra: "limits: { failed_logins_per_source: 3 }")
        let good = try gateway.token("alice", ["eng"])
        for attempt in 0..<3 {
            await #expect(throws: TokenError.self) {
                _ = try await gateway.runtime.authenticate(token: "bad-\(attempt)", purpose: "postgres", source: "192.0.2.1")
            }
        }
        let refused = await #expect(throws: GovernorError.self) {
            _ = try await gateway.runtime.authenticate(token: good, purpose: "postgres", source: "192.0.2.1")
        }
        #expect(refused?.code == .throttled)
        // Another address gets in, and the first does once the lockout has passed.
        _ = try await gateway.runtime.authenticate(token: good, purpose: "postgres", source: "192.0.2.2")
        gateway.clock.advance(by: .seconds(6))
        _ = try await gateway.runtime.authenticate(token: good, purpose: "postgres", source: "192.0.2.1")
    }

    @Test func forgedTokensNamingAUserDoNotLockThatUserOut() async throws {
        let gateway = try TestGateway(extra: "limits: { failed_logins_per_user: 2 }")
        let good = try gateway.token("alice", ["eng"])
        // Same header and claims, a signature that does not verify.
        let forged = good.split(separator: ".").prefix(2).joined(separator: ".") + ".AAAA"
        var throttled = 0
        for attempt in 0..<6 {
            do {
                _ = try await gateway.runtime.authenticate(token: forged, purpose: "ssh", source: "198.51.100.\(attempt)")
            } catch let error as GovernorError where error.code == .throttled {
                throttled += 1
            } catch {}
        }
        #expect(throttled == 4)
        // The real alice still gets in: her token verifies.
        let identity = try await gateway.runtime.authenticate(token: good, purpose: "ssh", source: "198.51.100.9")
        #expect(identity.user == "alice")
    }
}
