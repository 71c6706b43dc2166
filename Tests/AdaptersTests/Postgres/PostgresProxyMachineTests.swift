import MaskEngine
import NIOCore
import Testing
@testable import Adapters

/// Builds protocol messages for the tests (the inverse codec of the machine's).
enum Wire {
    static func message(_ type: Character, _ build: (inout ByteBuffer) -> Void = { _ in }) -> ByteBuffer {
        var body = ByteBuffer()
        build(&body)
        var out = ByteBuffer()
        PostgresMessage(type: type.asciiValue!, body: body).write(into: &out)
        return out
    }

    static func query(_ text: String) -> ByteBuffer { message("Q") { $0.writeNullTerminatedString(text) } }
    static func password(_ text: String) -> ByteBuffer { message("p") { $0.writeNullTerminatedString(text) } }
    static let sync = message("S")
    static let flush = message("H")

    static func parse(_ name: String = "", _ text: String) -> ByteBuffer {
        message("P") { body in
            body.writeNullTerminatedString(name)
            body.writeNullTerminatedString(text)
            body.writeInteger(Int16(0))
        }
    }

    static func bind(portal: String = "", statement: String = "", resultFormats: [Int16] = []) -> ByteBuffer {
        message("B") { body in
            body.writeNullTerminatedString(portal)
            body.writeNullTerminatedString(statement)
            body.writeInteger(Int16(0))
            body.writeInteger(Int16(0))
            body.writeInteger(Int16(resultFormats.count))
            for format in resultFormats { body.writeInteger(format) }
        }
    }

    static func describe(_ kind: Character, _ name: String = "") -> ByteBuffer {
        message("D") { body in
            body.writeInteger(kind.asciiValue!)
            body.writeNullTerminatedString(name)
        }
    }

    static func execute(_ portal: String = "", maxRows: Int32 = 0) -> ByteBuffer {
        message("E") { body in
            body.writeNullTerminatedString(portal)
            body.writeInteger(maxRows)
        }
    }

    static func rowDescription(_ columns: [(String, UInt32, Int16)], table: UInt32 = 0) -> ByteBuffer {
        message("T") { body in
            body.writeInteger(Int16(columns.count))
            for (name, type, format) in columns {
                body.writeNullTerminatedString(name)
                body.writeMultipleIntegers(table, Int16(1), type, Int16(-1), Int32(-1), format)
            }
        }
    }

    static func dataRow(_ values: [[UInt8]?]) -> ByteBuffer {
        message("D") { body in
            body.writeInteger(Int16(values.count))
            for value in values {
                if let value {
                    body.writeInteger(Int32(value.count))
                    body.writeBytes(value)
                } else {
                    body.writeInteger(Int32(-1))
                }
            }
        }
    }

    static func text(_ values: String?...) -> ByteBuffer { dataRow(values.map { $0.map { Array($0.utf8) } }) }
    static func complete(_ tag: String) -> ByteBuffer { message("C") { $0.writeNullTerminatedString(tag) } }
    static func ready(_ status: Character = "I") -> ByteBuffer { message("Z") { $0.writeInteger(status.asciiValue!) } }
    static func authentication(_ code: Int32) -> ByteBuffer { message("R") { $0.writeInteger(code) } }

    /// Decodes a stream of backend messages into (type, body) pairs.
    static func decode(_ buffers: [ByteBuffer]) throws -> [PostgresMessage] {
        var decoder = PostgresFrameDecoder(maximumMessageSize: 1 << 24, expectsStartup: false)
        var messages: [PostgresMessage] = []
        for var buffer in buffers {
            decoder.append(&buffer)
            while let message = try decoder.next() { messages.append(message) }
        }
        return messages
    }

    static func types(_ buffers: [ByteBuffer]) throws -> String {
        String(try decode(buffers).map { Character(UnicodeScalar($0.type)) })
    }

    static func dataRowValues(_ message: PostgresMessage) -> [String?] {
        var body = message.body
        let count = Int(body.readInteger(as: Int16.self) ?? 0)
        return (0..<count).map { _ in
            let length = body.readInteger(as: Int32.self) ?? -1
            return length < 0 ? nil : body.readString(length: Int(length))
        }
    }
}

let testEngine: MaskingEngine = {
    let corpora = URLPath.corpora
    // swiftlint:disable:next force_try
    return try! MaskingEngine(detectors: try! CorpusLoader.load(directories: [corpora]))
}()

enum URLPath {
    static var corpora: String {
        // Tests/AdaptersTests/Postgres/this file → the repository root.
        var path = #filePath
        for _ in 0..<4 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/corpora"
    }
}

/// A machine logged in as `user` on connection `db`, past upstream startup.
struct Harness {
    var machine: PostgresProxyMachine
    let governor: InMemoryGovernor
    var toClient: [ByteBuffer] = []
    var toUpstream: [ByteBuffer] = []
    var other: [PostgresProxyMachine.Action] = []

    init(groups: [String] = ["eng"], configuration: PostgresAdapterConfiguration = PostgresAdapterConfiguration(),
         reviewOutcome: ReviewOutcome = .approved(by: ["lead"]),
         rules extra: [@Sendable (Command) -> Decision?] = []) async throws {
        governor = InMemoryGovernor(
            tokens: ["tok-alice": Identity(user: "alice", groups: groups, issuer: "test")],
            connections: [ConnectionTarget(name: "db", kind: .postgres, target: "127.0.0.1:5432", database: "app",
                                           credential: Credential(username: "app", password: Secret("pw")))],
            engine: testEngine,
            rules: extra + [
                { $0.classes.contains("drop") ? .block(message: "DROP is not allowed") : nil },
                { $0.classes.contains("delete_without_where")
                    ? .review(ReviewTicket(id: "r-1", approveHint: "sluice reviews approve r-1") { .timedOut }) : nil },
            ],
            reviewOutcome: reviewOutcome, unmaskedGroups: ["dpo"])
        machine = PostgresProxyMachine(configuration: configuration, clientKey: .init(processID: 7, secretKey: 99))
        var startup = PostgresMessages.startup([("user", "alice"), ("database", "db")])
        absorb(machine.clientBytes(&startup))
        #expect(try Wire.types(toClient) == "R")
        toClient = []
        var password = Wire.password("tok-alice")
        let actions = machine.clientBytes(&password)
        guard case .openSession(let token, let connection)? = actions.first else {
            Issue.record("expected openSession, got \(actions)")
            return
        }
        let session = try await governor.openSession(token: token, connection: connection, kind: .postgres, peer: "test")
        absorb(machine.sessionOpened(session))
        absorb(machine.upstreamConnected())
        #expect(toUpstream.count == 1)
        toUpstream = []
        upstream(Wire.authentication(0), Wire.message("S") { $0.writeNullTerminatedString("server_version"); $0.writeNullTerminatedString("15") },
                 Wire.message("K") { $0.writeInteger(Int32(1234)); $0.writeInteger(Int32(5678)) }, Wire.ready())
        #expect(try Wire.types(toClient) == "RSKZ")
        toClient = []
        other = []
    }

    mutating func absorb(_ actions: [PostgresProxyMachine.Action]) {
        for action in actions {
            switch action {
            case .sendToClient(let buffer): toClient.append(buffer)
            case .sendToUpstream(let buffer): toUpstream.append(buffer)
            default: other.append(action)
            }
        }
    }

    mutating func client(_ buffers: ByteBuffer...) {
        var all = ByteBuffer()
        for var buffer in buffers { all.writeBuffer(&buffer) }
        absorb(machine.clientBytes(&all))
    }

    mutating func upstream(_ buffers: ByteBuffer...) {
        var all = ByteBuffer()
        for var buffer in buffers { all.writeBuffer(&buffer) }
        absorb(machine.upstreamBytes(&all))
    }

    mutating func takeClient() throws -> [PostgresMessage] {
        defer { toClient = [] }
        return try Wire.decode(toClient)
    }

    mutating func takeUpstream() throws -> [PostgresMessage] {
        defer { toUpstream = [] }
        return try Wire.decode(toUpstream)
    }
}

@Suite struct PostgresProxyMachineTests {
    @Test func aPlaintextLoginIsRefusedWhenTLSIsRequired() throws {
        var configuration = PostgresAdapterConfiguration()
        configuration.clientTLS = true
        configuration.requireClientTLS = true
        // Plaintext: the startup packet is refused before any password is asked for.
        var plain = PostgresProxyMachine(configuration: configuration, clientKey: .init(processID: 1, secretKey: 2))
        var startup = PostgresMessages.startup([("user", "alice"), ("database", "db")])
        let refused = plain.clientBytes(&startup)
        guard case .sendToClient(let buffer)? = refused.first else { Issue.record("\(refused)"); return }
        let fields = try PostgresMessages.parseFields(try Wire.decode([buffer])[0].body)
        #expect(fields["C"] == "28000" && fields["M"]?.contains("sslmode=require") == true)
        #expect(refused.contains { if case .close = $0 { true } else { false } })
        // After an SSLRequest and the upgrade, the same packet is answered with the password request.
        var secure = PostgresProxyMachine(configuration: configuration, clientKey: .init(processID: 1, secretKey: 2))
        var sslRequest = ByteBuffer()
        sslRequest.writeInteger(Int32(8))
        sslRequest.writeInteger(Int32(80_877_103))
        #expect(secure.clientBytes(&sslRequest).contains { if case .startClientTLS = $0 { true } else { false } })
        var again = PostgresMessages.startup([("user", "alice"), ("database", "db")])
        guard case .sendToClient(let answer)? = secure.clientBytes(&again).first else { Issue.record("no answer"); return }
        #expect(try Wire.types([answer]) == "R")
    }

    @Test func theStartupDeadlineEndsOnlyConnectionsThatHaveNotSentTheirToken() async throws {
        // Before the token: a FATAL 57014 and a close.
        var machine = PostgresProxyMachine(configuration: PostgresAdapterConfiguration(), clientKey: .init(processID: 1, secretKey: 2))
        let actions = machine.startupDeadlinePassed()
        guard case .sendToClient(let buffer)? = actions.first, case .close? = actions.last else {
            Issue.record("expected an error and a close, got \(actions)")
            return
        }
        #expect(try PostgresMessages.parseFields(try Wire.decode([buffer])[0].body)["C"] == "57014")
        #expect(machine.startupDeadlinePassed().isEmpty)  // closed already
        // Logged in: nothing happens.
        var harness = try await Harness()
        #expect(harness.machine.startupDeadlinePassed().isEmpty)
    }

    @Test func loginHandsTheClientOurCancelKeyAndRegistersTheUpstreamOne() async throws {
        var harness = try await Harness()
        _ = harness
        // The harness checked R, S, K, Z; the K carried our key and the upstream key was registered.
        harness = try await Harness()
        #expect(harness.machine.isRelaying)
    }

    @Test func simpleQueryRowsAreMaskedValueByValue() async throws {
        var h = try await Harness()
        h.client(Wire.query("select email, note from customers"))
        #expect(try h.takeUpstream().map(\.type) == [UInt8(ascii: "Q")])
        h.upstream(Wire.rowDescription([("email", 25, 0), ("note", 25, 0)]),
                   Wire.text("jane.doe@example.com", "order 4111111111111112 is fine"),
                   Wire.text(nil, "card 4111 1111 1111 1111"),
                   Wire.complete("SELECT 2"), Wire.ready())
        let messages = try h.takeClient()
        #expect(String(messages.map { Character(UnicodeScalar($0.type)) }) == "TDDCZ")
        #expect(Wire.dataRowValues(messages[1]) == ["[EMAIL]", "order 4111111111111112 is fine"])
        let second = Wire.dataRowValues(messages[2])
        #expect(second[0] == nil)
        #expect(second[1]?.contains("4111 1111 1111 1111") == false)
    }

    @Test func columnNamesCarryingDataAreMaskedAtEveryResultDespiteTheCleanNameCache() async throws {
        var h = try await Harness()
        for _ in 1...2 {
            h.client(Wire.query("select 1"))
            _ = try h.takeUpstream()
            h.upstream(Wire.rowDescription([("jane.doe@example.com", 25, 0), ("n", 23, 0)]), Wire.text("x", "1"),
                       Wire.complete("SELECT 1"), Wire.ready())
            let messages = try h.takeClient()
            let columns = try ColumnDescription.parseRowDescription(messages[0].body)
            #expect(columns.map(\.name) == ["[EMAIL]", "n"])
            #expect(messages[2].body.getNullTerminatedString(at: messages[2].body.readerIndex) == "SELECT 1")
        }
    }

    @Test func onlyCommandTagsOfFixedWordsAndShortCountsSkipTheScan() {
        for tag in ["SELECT 3", "INSERT 0 1", "CREATE TABLE", "DELETE 120000", "SET", "COPY 999999"] {
            #expect(PostgresResultMasker.isPlainTag(tag), "\(tag)")
        }
        for tag in ["SELECT 4111111111111111", "COPY 1000000", "NOTIFY jane@example.com", "select 1", "SELECT 1;", String(repeating: "A", count: 65)] {
            #expect(!PostgresResultMasker.isPlainTag(tag), "\(tag)")
        }
    }

    @Test func unmaskedGroupSeesRawValuesButTheRecordIsMasked() async throws {
        var h = try await Harness(groups: ["dpo"])
        h.client(Wire.query("select email from customers"))
        _ = try h.takeUpstream()
        h.upstream(Wire.rowDescription([("email", 25, 0)]), Wire.text("jane.doe@example.com"), Wire.complete("SELECT 1"), Wire.ready())
        let messages = try h.takeClient()
        #expect(Wire.dataRowValues(messages[1]) == ["jane.doe@example.com"])
        let recorded = h.governor.events.filter { $0.event.kind == .output }.map { String(decoding: $0.event.data, as: UTF8.self) }
        #expect(recorded.count == 1)
        #expect(!recorded[0].contains("jane.doe@example.com"))
        #expect(recorded[0].contains("[EMAIL]"))
    }

    @Test func blockedQueryNeverReachesUpstreamAndTheSessionStaysUsable() async throws {
        var h = try await Harness()
        h.client(Wire.query("select 1; drop table customers"))
        #expect(h.toUpstream.isEmpty)
        let messages = try h.takeClient()
        #expect(messages.map(\.type) == [UInt8(ascii: "E"), UInt8(ascii: "Z")])
        #expect(try PostgresMessages.parseFields(messages[0].body)["C"] == "42501")
        #expect(try PostgresMessages.parseFields(messages[0].body)["M"] == "DROP is not allowed")
        h.client(Wire.query("select 1"))
        #expect(try h.takeUpstream().count == 1)
    }

    @Test func blockedExtendedBatchAnswersErrorThenReadyAtSync() async throws {
        var h = try await Harness()
        h.client(Wire.parse("", "drop table customers"), Wire.bind(), Wire.execute(), Wire.sync)
        #expect(h.toUpstream.isEmpty)
        #expect(try h.takeClient().map(\.type) == [UInt8(ascii: "E"), UInt8(ascii: "Z")])
        // Parse + Flush: the error comes at once; what follows is discarded until Sync.
        h.client(Wire.parse("", "drop table x"), Wire.flush)
        #expect(try h.takeClient().map(\.type) == [UInt8(ascii: "E")])
        h.client(Wire.bind(), Wire.execute())
        #expect(h.toClient.isEmpty && h.toUpstream.isEmpty)
        h.client(Wire.sync)
        #expect(try h.takeClient().map(\.type) == [UInt8(ascii: "Z")])
        #expect(h.toUpstream.isEmpty)
    }

    @Test func localRefusalWaitsForRepliesStillDueFromUpstream() async throws {
        var h = try await Harness()
        h.client(Wire.query("select 1"), Wire.query("drop table x"))
        #expect(try h.takeUpstream().count == 1)
        #expect(h.toClient.isEmpty)
        h.upstream(Wire.rowDescription([("n", 23, 0)]), Wire.text("1"), Wire.complete("SELECT 1"), Wire.ready())
        #expect(String(try h.takeClient().map { Character(UnicodeScalar($0.type)) }) == "TDCZEZ")
    }

    @Test func reviewedStatementIsHeldThenRunsWhenApproved() async throws {
        var h = try await Harness()
        h.client(Wire.query("delete from customers"))
        #expect(h.toUpstream.isEmpty)
        #expect(try h.takeClient().map(\.type) == [UInt8(ascii: "N")])
        guard case .awaitReview(let ticket)? = h.other.last else {
            Issue.record("expected awaitReview")
            return
        }
        #expect(ticket.id == "r-1")
        h.client(Wire.query("select 2"))
        #expect(h.toUpstream.isEmpty, "later statements wait behind the held one")
        h.absorb(h.machine.reviewDecided(await ticket.outcome()))
        let forwarded = try h.takeUpstream()
        #expect(forwarded.count == 2)
    }

    @Test func deniedReviewFailsWithTheReason() async throws {
        var h = try await Harness(reviewOutcome: .denied(by: "lena", reason: "not now"))
        h.client(Wire.query("delete from customers"))
        _ = try h.takeClient()
        h.absorb(h.machine.reviewDecided(.denied(by: "lena", reason: "not now")))
        #expect(h.toUpstream.isEmpty)
        let messages = try h.takeClient()
        #expect(try PostgresMessages.parseFields(messages[0].body)["M"] == "denied by lena: not now")
    }

    @Test func executeWithoutDescribeUsesTheStatementDescriptionAndBindFormats() async throws {
        var h = try await Harness()
        h.client(Wire.parse("s1", "select email from customers"), Wire.describe("S", "s1"), Wire.sync)
        _ = try h.takeUpstream()
        h.upstream(Wire.message("1"), Wire.message("t") { $0.writeInteger(Int16(0)) },
                   Wire.rowDescription([("email", 25, 0)]), Wire.ready())
        _ = try h.takeClient()
        h.client(Wire.bind(statement: "s1", resultFormats: [1]), Wire.execute(), Wire.sync)
        _ = try h.takeUpstream()
        h.upstream(Wire.message("2"), Wire.text("jane.doe@example.com"), Wire.complete("SELECT 1"), Wire.ready())
        let messages = try h.takeClient()
        #expect(Wire.dataRowValues(messages[1]) == ["[EMAIL]"])
    }

    @Test func portalSuspensionKeepsMaskingEveryBatchOfRows() async throws {
        var h = try await Harness()
        h.client(Wire.parse("", "select email from customers"), Wire.bind(portal: "p"), Wire.describe("P", "p"),
                 Wire.execute("p", maxRows: 1), Wire.sync)
        _ = try h.takeUpstream()
        h.upstream(Wire.message("1"), Wire.message("2"), Wire.rowDescription([("email", 25, 0)]),
                   Wire.text("a.one@example.com"), Wire.message("s"), Wire.ready("T"))
        var messages = try h.takeClient()
        #expect(Wire.dataRowValues(messages[3]) == ["[EMAIL]"])
        h.client(Wire.execute("p", maxRows: 1), Wire.sync)
        _ = try h.takeUpstream()
        h.upstream(Wire.text("b.two@example.com"), Wire.complete("SELECT 1"), Wire.ready("T"))
        messages = try h.takeClient()
        #expect(Wire.dataRowValues(messages[0]) == ["[EMAIL]"])
    }

    @Test func binaryIntegerHoldingACardNumberIsNulled() async throws {
        var h = try await Harness()
        h.client(Wire.query("select id, card from t"))
        _ = try h.takeUpstream()
        var id = ByteBuffer()
        id.writeInteger(Int64(7))
        var card = ByteBuffer()
        card.writeInteger(Int64(4_111_111_111_111_111))
        h.upstream(Wire.rowDescription([("id", 20, 1), ("card", 20, 1)]),
                   Wire.dataRow([Array(id.readableBytesView), Array(card.readableBytesView)]), Wire.complete("SELECT 1"), Wire.ready())
        let messages = try h.takeClient()
        var body = messages[1].body
        #expect(body.readInteger(as: Int16.self) == 2)
        #expect(body.readInteger(as: Int32.self) == 8)
        #expect(body.readInteger(as: Int64.self) == 7)
        #expect(body.readInteger(as: Int32.self) == -1)
    }

    @Test func errorDetailsAreMasked() async throws {
        var h = try await Harness()
        h.client(Wire.query("insert into t values ('x')"))
        _ = try h.takeUpstream()
        var error = ByteBuffer()
        PostgresMessages.error(sqlState: "23505", message: "duplicate key value violates unique constraint",
                               detail: "Key (email)=(jane.doe@example.com) already exists.").write(into: &error)
        h.upstream(error, Wire.ready())
        let fields = try PostgresMessages.parseFields(try h.takeClient()[0].body)
        #expect(fields["D"] == "Key (email)=([EMAIL]) already exists.")
    }

    @Test func malformedDataRowFailsClosed() async throws {
        var h = try await Harness()
        h.client(Wire.query("select email from t"))
        _ = try h.takeUpstream()
        let truncated = Wire.message("D") { body in
            body.writeInteger(Int16(1))
            body.writeInteger(Int32(100))
            body.writeString("jane.doe@example.com")
        }
        h.upstream(Wire.rowDescription([("email", 25, 0)]), truncated)
        let messages = try h.takeClient()
        #expect(messages.map(\.type).contains(UInt8(ascii: "E")))
        #expect(!messages.contains { String(buffer: $0.body).contains("jane.doe") })
        #expect(h.other.contains { if case .close = $0 { true } else { false } })
    }

    @Test func oversizedClientMessageClosesWithAnError() async throws {
        var configuration = PostgresAdapterConfiguration()
        configuration.maximumMessageSize = 1024
        var h = try await Harness(configuration: configuration)
        h.client(Wire.query(String(repeating: "x", count: 5000)))
        #expect(h.toUpstream.isEmpty)
        #expect(try h.takeClient().map(\.type) == [UInt8(ascii: "E")])
        #expect(h.other.contains { if case .close = $0 { true } else { false } })
    }

    @Test func cancelRequestIsForwardedAndTheConnectionClosed() {
        var machine = PostgresProxyMachine(configuration: PostgresAdapterConfiguration(), clientKey: .init(processID: 1, secretKey: 2))
        var packet = PostgresMessages.cancelRequest(processID: 7, secretKey: 99)
        let actions = machine.clientBytes(&packet)
        guard case .cancel(let pid, let key)? = actions.first else {
            Issue.record("expected cancel, got \(actions)")
            return
        }
        #expect(pid == 7 && key == 99)
    }

    @Test func wrongTokenGetsInvalidPasswordAndClose() async throws {
        var machine = PostgresProxyMachine(configuration: PostgresAdapterConfiguration(), clientKey: .init(processID: 1, secretKey: 2))
        var startup = PostgresMessages.startup([("user", "alice"), ("database", "db")])
        _ = machine.clientBytes(&startup)
        var password = Wire.password("nope")
        _ = machine.clientBytes(&password)
        let actions = machine.sessionRefused(GovernorError(.unauthenticated, "authentication failed"))
        guard case .sendToClient(let buffer)? = actions.first else {
            Issue.record("expected an error to the client")
            return
        }
        let fields = try PostgresMessages.parseFields(try Wire.decode([buffer])[0].body)
        #expect(fields["C"] == "28P01")
        #expect(actions.contains { if case .close = $0 { true } else { false } })
    }

    @Test func queriesAndResultsAreRecorded() async throws {
        var h = try await Harness()
        h.client(Wire.query("select email from customers where email = 'jane.doe@example.com'"))
        _ = try h.takeUpstream()
        h.upstream(Wire.rowDescription([("email", 25, 0)]), Wire.text("jane.doe@example.com"), Wire.complete("SELECT 1"), Wire.ready())
        let events = h.governor.events.map { ($0.event.kind, String(decoding: $0.event.data, as: UTF8.self)) }
        #expect(events.contains { $0.0 == .input && $0.1 == "select email from customers where email = '[EMAIL]'" })
        #expect(events.contains { $0.0 == .output && $0.1 == "email\n[EMAIL]\n(SELECT 1; 1 row)" })
        #expect(!events.contains { $0.1.contains("jane.doe@example.com") })
    }
}
