import Adapters
import Testing
@testable import Gateway

/// The timeline the console and `sessions replay` read a record through (issue 15, point 4).
@Suite struct SessionTimelineTests {
    func events(_ items: [(SessionEvent.Kind, [UInt8])]) -> [StoredEvent] {
        items.enumerated().map { index, item in
            StoredEvent(sessionID: "s", seq: index, offset: Int64(index) * 1000, kind: item.0.rawValue, data: item.1, hash: [])
        }
    }

    func input(_ text: String) -> (SessionEvent.Kind, [UInt8]) { (.input, Array(text.utf8)) }
    func output(_ text: String) -> (SessionEvent.Kind, [UInt8]) { (.output, Array(text.utf8)) }
    func mark(_ marker: SessionMarker) -> (SessionEvent.Kind, [UInt8]) { (.marker, marker.json) }

    @Test func postgresStatementsCarryTheirResultsAndMarkers() {
        let record = events([
            input("select email from customers"), output("email\n[EMAIL]\n(SELECT 1; 1 row)"),
            input("delete from orders"), mark(.decision(.review, rule: 2, classes: ["delete_without_where"], review: "r-1")),
            mark(.reviewOutcome(review: "r-1", .denied, by: ["bob"])),
            input("copy t from stdin"), mark(.copyIn(done: true)),
        ])
        let timeline = SessionTimeline(kind: "postgres", events: record)
        #expect(timeline.statements.map(\.text) == ["select email from customers", "delete from orders", "copy t from stdin"])
        #expect(timeline.statements[0].result == "email\n[EMAIL]\n(SELECT 1; 1 row)")
        #expect(timeline.statements[2].markers == [.copyIn(done: true)])
        #expect(timeline.decisions.map(\.command) == ["delete from orders", "review r-1"])
        #expect(timeline.decisions.map(\.at) == [3000, 4000])
        #expect(timeline.notes.isEmpty)
    }

    @Test func httpRequestsGetTheirStatusAndSizes() {
        let record = events([
            input("GET /customers"), (.input, Array(#"{"body":"not a request line"}"#.utf8)),
            mark(.exchange(status: 200, requestBytes: 27, responseBytes: 410, upstreamBytes: 420, recordCut: false)),
            input("DELETE /customers/1"), mark(.answered(status: 403, code: "blocked")),
        ])
        let timeline = SessionTimeline(kind: "http", events: record)
        #expect(timeline.requests.map(\.line) == ["GET /customers", "DELETE /customers/1"])
        #expect(timeline.requests.map(\.status) == [200, 403])
        #expect(timeline.requests[0].sizes?.response == 410 && timeline.requests[1].sizes == nil)
    }

    @Test func terminalMarkersAreNotesAndDamagedMarkersAreCounted() {
        let record = events([
            output("$ ls\r\n"), mark(.forward(destination: "db:5432", .opened)), (.marker, Array("{not json".utf8)),
            mark(.exitStatus(0)),
        ])
        let timeline = SessionTimeline(kind: "ssh", events: record)
        #expect(timeline.notes.map(\.marker) == [.forward(destination: "db:5432", .opened), .exitStatus(0)])
        #expect(timeline.unreadableMarkers == 1)
        #expect(SessionTimeline.isTerminal(kind: "ssh", events: record))
        #expect(!SessionTimeline.isTerminal(kind: "kubernetes", events: events([output(#"{"items":[]}"#)])))
        #expect(SessionTimeline.isTerminal(kind: "kubernetes", events: events([output("root@pod:/# ")])))
    }

    @Test func everyListIsBounded() {
        var limits = SessionTimeline.Limits()
        limits.entries = 3
        limits.preview = 10
        limits.text = 5
        let record = events((0..<10).flatMap { _ in [input("select 1234567890"), output(String(repeating: "x", count: 50))] })
        let timeline = SessionTimeline(kind: "postgres", events: record, limits: limits)
        #expect(timeline.statements.count == 3)
        #expect(timeline.statements.allSatisfy { $0.text == "selec" && $0.result.count == 10 })
    }

    @Test func replayShowsStatementsAndResultsOnLinesOfTheirOwn() {
        let record = events([
            input("select 1"), output("?column?\n1\n(SELECT 1; 1 row)"), input("select 2"), output("?column?\n2\n(SELECT 1; 1 row)"),
            mark(.exitStatus(3)),
        ])
        let text = String(decoding: record.flatMap { SessionTimeline.replay($0, kind: "postgres", terminal: false) }, as: UTF8.self)
        #expect(text == "\u{1B}[1m=> select 1\u{1B}[0m\n?column?\n1\n(SELECT 1; 1 row)\n"
            + "\u{1B}[1m=> select 2\u{1B}[0m\n?column?\n2\n(SELECT 1; 1 row)\n"
            + "\n\u{1B}[2m# exit status 3\u{1B}[0m\n")
    }

    @Test func replayOfATerminalSendsOutputAsItWasAndHidesKeystrokes() {
        let record = events([input("ls\r"), output("a  b\r\n$ "), mark(.exitStatus(0))])
        let bytes = record.flatMap { SessionTimeline.replay($0, kind: "ssh", terminal: true) }
        #expect(String(decoding: bytes, as: UTF8.self) == "a  b\r\n$ \r\n\u{1B}[2m# exit status 0\u{1B}[0m\r\n")
    }
}
