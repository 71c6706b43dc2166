import Foundation
import Testing
@testable import Adapters

/// Typed record markers (issue 15, point 4): one encoding, read back exactly, old shapes readable.
@Suite struct SessionMarkerTests {
    static let all: [SessionMarker] = [
        .decision(.block, rule: 2, classes: ["delete_without_where", "write"], message: "say \"where\""),
        .decision(.review, rule: nil, classes: [], review: "r-1"),
        .reviewOutcome(review: "r-1", .approved, by: ["bob", "carol"]),
        .reviewOutcome(review: "r-2", .timedOut, by: [], error: "store: disk full"),
        .exchange(status: 200, requestBytes: 12, responseBytes: 3400, upstreamBytes: 3500, recordCut: true),
        .exchange(status: 404, requestBytes: 0, responseBytes: 9, upstreamBytes: 9, recordCut: false),
        .answered(status: 502, code: "upstream_failed"),
        .exitStatus(-1),
        .outputCut(atBytes: 1_048_576),
        .error("unreadable client message", bytes: 17),
        .error("response could not be masked", reason: "engine: scratch"),
        .upstreamError("connection refused (127.0.0.1:5432)"),
        .refused("binary copy out"),
        .refusedFunctionCall(oid: 1234),
        .hostKeyMismatch(presented: "ssh-ed25519"),
        .copyIn(done: false),
        .upgraded("v5.channel.k8s.io"),
        .forward(destination: "127.0.0.1:80", .opened),
        .forward(destination: "db:5432", .closed(bytesUp: 10, bytesDown: 20)),
        .forward(destination: "db:5432", .failed("refused")),
        .forward(destination: "evil:25", .refused("not in port_forwarding")),
        .transfer(kind: "sftp", files: ["a \"b\".txt", "c\nd"], bytesUp: 1, bytesDown: 2),
        .ended("token expired"),
        .recordingFailed(reason: "database or disk is full", lostRecords: 20),
        .other(["future": .string("x"), "n": .int(3)]),
    ]

    @Test(arguments: all) func everyMarkerReadsBackAsItWasWritten(_ marker: SessionMarker) throws {
        #expect(SessionMarker(json: marker.json) == marker)
        // The same object through Codable, and the bytes parse as JSON for any other reader.
        let encoded = try JSONEncoder().encode(marker)
        #expect(try JSONDecoder().decode(SessionMarker.self, from: encoded) == marker)
        #expect(try JSONSerialization.jsonObject(with: Data(marker.json)) is [String: Any])
        #expect(!marker.summary.isEmpty)
    }

    @Test func theFirstKeyNamesTheKind() {
        #expect(String(decoding: SessionMarker.exitStatus(0).json, as: UTF8.self) == #"{"exit_status":0}"#)
        #expect(String(decoding: SessionMarker.recordingFailed(reason: "full", lostRecords: 2).json, as: UTF8.self)
            == #"{"recording_failed":"full","lost_records":2}"#)
        #expect(String(decoding: SessionMarker.decision(.block, rule: 1, classes: ["ddl"]).json, as: UTF8.self)
            == #"{"decision":"block","rule":1,"classes":["ddl"]}"#)
    }

    @Test func textWithQuotesAndControlCharactersIsEscaped() throws {
        // The reason that once went into a marker unescaped (a `connect failed (…)` text).
        let marker = SessionMarker.upstreamError("connect failed (\"x\"\n\u{1}\\)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(marker.json)) as? [String: String])
        #expect(object["upstream_error"] == "connect failed (\"x\"\n\u{1}\\)")
    }

    @Test func markersOfEarlierReleasesAreRead() {
        let old: [(String, SessionMarker)] = [
            (#"{"classes":"delete_without_where,write","decision":"block","message":"no","rule":"3"}"#,
             .decision(.block, rule: 3, classes: ["delete_without_where", "write"], message: "no")),
            (#"{"classes":"","decision":"review","review":"r-9","rule":""}"#, .decision(.review, rule: nil, classes: [], review: "r-9")),
            (#"{"by":"bob,carol","outcome":"approved","review":"r-9"}"#, .reviewOutcome(review: "r-9", .approved, by: ["bob", "carol"])),
            (#"{"recorded":"output cut at 65536 bytes"}"#, .outputCut(atBytes: 65536)),
            (#"{"refused":"function_call","oid":77}"#, .refusedFunctionCall(oid: 77)),
            (#"{"transfer":"scp","files":[],"bytes_up":0,"bytes_down":5}"#, .transfer(kind: "scp", files: [], bytesUp: 0, bytesDown: 5)),
        ]
        for (json, marker) in old {
            #expect(SessionMarker(json: Array(json.utf8)) == marker, "\(json)")
        }
    }

    @Test func whatIsNotOneFlatObjectIsNotAMarker() {
        for text in ["", "{", "[]", #"{"a":{"b":1}}"#, #"{"a":1} x"#, #"{"a":"\q"}"#, #"{"a":1.5}"#, #"{"a":"\ud800"}"#, "{\"a\":\"\u{1}\"}"] {
            #expect(SessionMarker(json: Array(text.utf8)) == nil, "\(text)")
        }
        #expect(SessionMarker(json: Array(#" { "exit_status" : 3 } "#.utf8)) == .exitStatus(3))
        #expect(SessionMarker(json: Array(#"{"a":"\ud83d\ude00"}"#.utf8)) == .other(["a": .string("😀")]))
    }

    @Test func anAdapterMarksThroughItsSession() async throws {
        let governor = InMemoryGovernor(tokens: ["t": Identity(user: "alice", groups: [], issuer: "test")],
                                        connections: [ConnectionTarget(name: "box", kind: .ssh, target: "127.0.0.1:22")], engine: nil)
        let session = try await governor.openSession(token: "t", connection: "box", kind: .ssh, peer: "test")
        session.mark(.exitStatus(7))
        #expect(governor.events.map(\.event) == [SessionEvent(.marker, Array(#"{"exit_status":7}"#.utf8))])
    }
}
