import Dispatch
import Foundation
import MaskEngine
import NIOCore
@testable import Adapters

/// The Postgres wire codec and the proxy machine.
enum PostgresFuzz {
    /// The frame decoder (startup packets and typed messages) over random chunkings, and the
    /// parsers of the message bodies the gateway reads.
    static func wire(_ input: [UInt8]) {
        var rest = input[...]
        var choices = Choices(&rest)
        var decoder = PostgresFrameDecoder(maximumMessageSize: 1 << 16, expectsStartup: choices.below(2) == 0)
        for chunk in choices.chunks(Array(rest), largest: 64) {
            var buffer = ByteBuffer(bytes: chunk)
            decoder.append(&buffer)
            do {
                while true {
                    if decoder.expectsStartup {
                        guard try decoder.nextStartup() != nil else { break }
                        continue
                    }
                    guard let message = try decoder.next() else { break }
                    _ = try? PostgresMessages.parseFields(message.body)
                    _ = try? ColumnDescription.parseRowDescription(message.body)
                    _ = PostgresRelay.bindRecord(message.body)
                }
            } catch {
                return
            }
            guard decoder.bufferedBytes <= (1 << 16) + 64 + 5 else { fatalError("decoder holds \(decoder.bufferedBytes) bytes") }
        }
    }

    static let governor = InMemoryGovernor(
        tokens: ["tok": Identity(user: "alice", groups: ["eng"], issuer: "fuzz")],
        connections: [ConnectionTarget(name: "db", kind: .postgres, target: "127.0.0.1:5432", database: "app",
                                       credential: Credential(username: "app", password: Secret("pw")))],
        engine: MaskerFuzz.engine,
        rules: [{ $0.classes.contains("drop") ? .block(message: "no DROP") : nil }])

    /// A session opened once (the governor is async; the harness is not).
    static let session: any GovernedSession = {
        let semaphore = DispatchSemaphore(value: 0)
        let result = Locked<(any GovernedSession)?>(nil)
        Task {
            let opened = try? await governor.openSession(token: "tok", connection: "db", kind: .postgres, peer: "127.0.0.1:1")
            result.withLock { $0 = opened }
            semaphore.signal()
        }
        semaphore.wait()
        return result.withLock { $0 }!
    }()

    static func message(_ type: Character, _ build: (inout ByteBuffer) -> Void = { _ in }) -> ByteBuffer {
        var body = ByteBuffer()
        build(&body)
        var out = ByteBuffer()
        PostgresMessage(type: type.asciiValue!, body: body).write(into: &out)
        return out
    }

    /// A logged-in machine, then bytes from the client and from the upstream server, interleaved
    /// as the input says: the first byte of each step picks the side and the length.
    static func proxy(_ input: [UInt8]) {
        var machine = PostgresProxyMachine(configuration: PostgresAdapterConfiguration(), clientKey: .init(processID: 7, secretKey: 9))
        var startup = PostgresMessages.startup([("user", "alice"), ("database", "db")])
        _ = machine.clientBytes(&startup)
        var password = message("p") { $0.writeNullTerminatedString("tok") }
        _ = machine.clientBytes(&password)
        _ = machine.sessionOpened(session)
        _ = machine.upstreamConnected()
        var ready = message("R") { $0.writeInteger(Int32(0)) }
        var key = message("K") { $0.writeInteger(Int32(1)); $0.writeInteger(Int32(2)) }
        var idle = message("Z") { $0.writeInteger(UInt8(ascii: "I")) }
        ready.writeBuffer(&key)
        ready.writeBuffer(&idle)
        _ = machine.upstreamBytes(&ready)
        guard machine.isRelaying else { fatalError("the machine did not reach relaying") }

        var offset = 0
        while offset < input.count {
            let step = input[offset]
            offset += 1
            let length = min(input.count - offset, Int(step & 0x7f) * 4 + 1)
            var chunk = ByteBuffer(bytes: input[offset..<offset + length])
            offset += length
            let actions = step & 0x80 == 0 ? machine.clientBytes(&chunk) : machine.upstreamBytes(&chunk)
            for action in actions {
                switch action {
                case .close: return
                case .awaitReview: _ = machine.reviewDecided(.denied(by: "fuzz", reason: ""))
                default: break
                }
            }
        }
    }
}
