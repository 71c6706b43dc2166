import MaskEngine
import Testing
@testable import Adapters

@Suite struct TypedLineTests {
    func lines(_ input: String) -> [TypedLine.Event] {
        var line = TypedLine()
        return line.feed(Array(input.utf8))
    }

    @Test func enterCompletesTheTypedLine() {
        #expect(lines("ls -la\r") == [.line("ls -la")])
        #expect(lines("a\rb\n") == [.line("a"), .line("b")])
    }

    @Test func editingKeysAreApplied() {
        #expect(lines("rm -rx\u{7f}f /\r") == [.line("rm -rf /")])
        #expect(lines("echo hi there\u{17}\r") == [.line("echo hi ")])
        #expect(lines("garbage\u{15}ls\r") == [.line("ls")])
        #expect(lines("sleep 10\u{03}") == [.cancelled])
    }

    @Test func escapeSequencesAreSkipped() {
        #expect(lines("ls\u{1b}[A\u{1b}[D -l\r") == [.line("ls -l")])
        #expect(lines("\u{1b}OPtop\r") == [.line("top")])
    }

    @Test func aLineIsBounded() {
        var line = TypedLine()
        _ = line.feed(Array(repeating: UInt8(ascii: "x"), count: TypedLine.maximumLength * 2))
        #expect(line.pending.utf8.count == TypedLine.maximumLength)
    }
}

@Suite struct SFTPObserverTests {
    func packet(_ type: UInt8, _ body: [UInt8]) -> [UInt8] {
        let length = UInt32(body.count + 1)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type] + body
    }

    func string(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        let length = UInt32(bytes.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + bytes
    }

    @Test func recordsFileNamesAndSizesAcrossAnySplit() {
        let id: [UInt8] = [0, 0, 0, 1]
        let open = packet(3, id + string("/tmp/report.csv") + [0, 0, 0, 1] + [0, 0, 0, 0])
        let write = packet(6, id + string("h1") + [0, 0, 0, 0, 0, 0, 0, 0] + string(String(repeating: "a", count: 5000)))
        let stream = open + write
        for split in [1, 7, 100, stream.count] {
            var observer = SFTPObserver()
            var index = 0
            while index < stream.count {
                let end = min(stream.count, index + split)
                Array(stream[index..<end]).withUnsafeBytes { observer.clientBytes($0) }
                index = end
            }
            #expect(observer.opened == ["/tmp/report.csv"], "split \(split)")
            #expect(observer.bytesUploaded == 5000, "split \(split)")
        }
        var observer = SFTPObserver()
        observer.serverBytes(packet(103, id + string(String(repeating: "b", count: 1234))))
        #expect(observer.bytesDownloaded == 1234)
        #expect(observer.summary(kind: "sftp") == .transfer(kind: "sftp", files: [], bytesUp: 0, bytesDown: 1234))
    }
}

@Suite struct SSHOutputMaskerTests {
    @Test func outputIsMaskedAcrossPacketsAndHeldBytesFlushWhenIdle() throws {
        let masker = try SSHOutputMasker(choice: .masked(engine: testEngine, forced: nil), idleFlush: .milliseconds(10))
        var out: [UInt8] = []
        for part in ["mail jane.d", "oe@example.com now\nprompt$ "] {
            out += try Array(part.utf8).withUnsafeBytes { try masker.write($0) }
        }
        out += try masker.idleBytes(now: .now + .seconds(1))
        #expect(String(decoding: out, as: UTF8.self) == "mail [EMAIL] now\nprompt$ ")
        #expect(try masker.finish().isEmpty)
    }

    @Test func aValueWhollyInOneStreamIsMaskedWhateverTheOtherStreamDoes() throws {
        let stdout = try SSHOutputMasker(choice: .masked(engine: testEngine, forced: nil))
        let stderr = try SSHOutputMasker(choice: .masked(engine: testEngine, forced: nil))
        var out: [UInt8] = []
        var err: [UInt8] = []
        let outParts = ["card 4111 \u{1b}[1m1111", " 1111 ", "1111\u{1b}[0m ok jane.", "doe@example.com\n"]
        let errParts = ["warning: 4111", " 1111\n", "mail bob@", "example.org\n"]
        for (o, e) in zip(outParts, errParts) {
            out += try Array(o.utf8).withUnsafeBytes { try stdout.write($0) }
            err += try Array(e.utf8).withUnsafeBytes { try stderr.write($0) }
        }
        out += try stdout.finish()
        err += try stderr.finish()
        let outText = String(decoding: out, as: UTF8.self), errText = String(decoding: err, as: UTF8.self)
        #expect(!outText.contains("4111") && outText.contains("[EMAIL]") && !outText.contains("jane"), "\(outText.debugDescription)")
        #expect(errText.contains("[EMAIL]") && !errText.contains("bob@"), "\(errText.debugDescription)")
    }

    @Test func unmaskedUsersGetBytesAsTheyCome() throws {
        let masker = try SSHOutputMasker(choice: .unmasked)
        let out = try Array("jane.doe@example.com".utf8).withUnsafeBytes { try masker.write($0) }
        #expect(String(decoding: out, as: UTF8.self) == "jane.doe@example.com")
    }
}

@Suite struct ForwardPermissionTests {
    @Test func emptyListRefusesEveryDestination() {
        #expect(!ForwardPermission().permits(host: "127.0.0.1", port: 5432))
    }

    @Test func exactHostAndPortMatchWithoutDNS() throws {
        let permission = try ForwardPermission(["127.0.0.1:5432", "DB.internal:6379"])
        #expect(permission.permits(host: "127.0.0.1", port: 5432))
        #expect(permission.permits(host: "db.INTERNAL", port: 6379))
        #expect(!permission.permits(host: "localhost", port: 5432))
        #expect(!permission.permits(host: "127.0.0.1", port: 5433))
        #expect(!permission.permits(host: "evil-db.internal", port: 6379))
    }

    @Test func wildcardsCoverSubdomainsAndPortsOnly() throws {
        let permission = try ForwardPermission(["*.svc.cluster:443", "bastion:*", "[::1]:8080"])
        #expect(permission.permits(host: "api.svc.cluster", port: 443))
        #expect(!permission.permits(host: "svc.cluster", port: 443))
        #expect(!permission.permits(host: "api.svc.cluster.evil", port: 443))
        #expect(permission.permits(host: "bastion", port: 1))
        #expect(permission.permits(host: "::1", port: 8080))
        #expect(try ForwardPermission(["*:*"]).permits(host: "anything", port: 9))
    }

    @Test func malformedPatternsAreRefused() {
        for pattern in ["db", "db:0", "db:70000", "db:x", ":5432", "d*b:1", "a b:1"] {
            #expect(throws: ForwardPatternError.self, "\(pattern)") { try ForwardPermission([pattern]) }
        }
    }
}
