import MaskEngine

/// Masks one output stream of an SSH channel (stdout or stderr) as it flows: exact across
/// packets and across terminal escape sequences (see ``TerminalMasker``), with an idle flush for
/// interactive sessions, and fail-closed on engine errors. Each stream is masked on its own: a
/// value wholly in one stream is always masked; a value split between stdout and stderr is not
/// seen (with a pty both are one stream).
public final class SSHOutputMasker {
    private let masker: TerminalMasker?
    /// Held bytes are released after this long without new output (interactive latency bound).
    public let idleFlush: Duration
    private var lastWrite: ContinuousClock.Instant?
    public private(set) var failed = false

    public init(choice: MaskingChoice, idleFlush: Duration = .milliseconds(50)) throws {
        switch choice {
        case .unmasked: masker = nil
        case .masked(let engine, _): masker = try TerminalMasker(engine: engine)
        }
        self.idleFlush = idleFlush
    }

    /// Masks `bytes`; returns what may be sent now. Throws (fail closed) when scanning fails.
    /// `now` starts the idle wait for what is held back.
    public func write(_ bytes: UnsafeRawBufferPointer, now: ContinuousClock.Instant = .now) throws -> [UInt8] {
        guard let masker else { return Array(bytes) }
        var out: [UInt8] = []
        do {
            try masker.write(bytes) { out.append(contentsOf: $0) }
        } catch {
            failed = true
            throw error
        }
        lastWrite = now
        return out
    }

    /// When held bytes are released by ``idleBytes(now:)``; nil when nothing is held.
    public var idleDeadline: ContinuousClock.Instant? {
        guard let masker, let lastWrite, masker.heldBack > 0 else { return nil }
        return lastWrite + idleFlush
    }

    /// Held bytes when the stream has been idle for `idleFlush`, else nothing.
    public func idleBytes(now: ContinuousClock.Instant = .now) throws -> [UInt8] {
        guard let masker, let lastWrite, masker.heldBack > 0, now - lastWrite >= idleFlush else { return [] }
        var out: [UInt8] = []
        do {
            try masker.flush { out.append(contentsOf: $0) }
        } catch {
            failed = true
            throw error
        }
        self.lastWrite = nil
        return out
    }

    /// Everything still held, at end of stream.
    public func finish() throws -> [UInt8] {
        guard let masker else { return [] }
        var out: [UInt8] = []
        try masker.finish { out.append(contentsOf: $0) }
        return out
    }

    public var counts: [String: Int] { masker?.counts ?? [:] }
}

/// Rebuilds the line a user types into an interactive shell, so the guardrails can check it at
/// Enter. Limits (documented): it sees keystrokes, not the shell's own editing state — history
/// recall (arrow keys), tab completion and cursor movement inside the line are not replayed;
/// pasted multi-line input is checked line by line.
public struct TypedLine: Sendable {
    private var bytes: [UInt8] = []
    private var escape = 0
    public static let maximumLength = 16 * 1024

    public init() {}

    public enum Event: Equatable, Sendable {
        /// The user pressed Enter on this line.
        case line(String)
        /// The line was abandoned (Ctrl-C, Ctrl-U clears without event).
        case cancelled
    }

    /// Feeds typed bytes; returns the lines completed by them.
    public mutating func feed(_ input: some Sequence<UInt8>) -> [Event] {
        var events: [Event] = []
        for byte in input {
            if escape > 0 {
                // Skip ANSI escape sequences (arrows, function keys): ESC [ ... final byte.
                if escape == 1 { escape = byte == UInt8(ascii: "[") || byte == UInt8(ascii: "O") ? 2 : 0; continue }
                if (0x40...0x7e).contains(byte) { escape = 0 }
                continue
            }
            switch byte {
            case 0x1b: escape = 1
            case 0x0d, 0x0a:
                events.append(.line(String(decoding: bytes, as: UTF8.self)))
                bytes.removeAll(keepingCapacity: true)
            case 0x03:
                if !bytes.isEmpty { events.append(.cancelled) }
                bytes.removeAll(keepingCapacity: true)
            case 0x15: bytes.removeAll(keepingCapacity: true)
            case 0x7f, 0x08: if !bytes.isEmpty { bytes.removeLast() }
            case 0x17:
                while let last = bytes.last, last == 0x20 { bytes.removeLast() }
                while let last = bytes.last, last != 0x20 { bytes.removeLast() }
            case 0x00..<0x20: continue
            default:
                if bytes.count < Self.maximumLength { bytes.append(byte) }
            }
        }
        return events
    }

    public var pending: String { String(decoding: bytes, as: UTF8.self) }
}

/// How an SSH request is described to the guardrails.
public enum SSHCommands {
    /// An `exec` request: the command line, class `exec` (plus `scp` or `sftp` when it is one).
    /// Rules match the raw text and the canonical forms of its shell-word parse; the parse adds
    /// the classes `dynamic` and `expansion` (see ``ShellCommandLine``).
    public static func exec(_ command: String) -> Command {
        var classes = ["exec"]
        let trimmed = command.drop { $0 == " " }
        if trimmed.hasPrefix("scp ") { classes.append("scp") }
        if trimmed.hasPrefix("rsync ") { classes.append("rsync") }
        let parsed = ShellCommandLine.parse(command)
        return Command(text: command, classes: classes + parsed.classes, forms: parsed.forms)
    }

    /// A line typed in an interactive shell, parsed like an exec command.
    public static func shellLine(_ line: String) -> Command {
        let parsed = ShellCommandLine.parse(line)
        return Command(text: line, classes: ["shell"] + parsed.classes, forms: parsed.forms)
    }

    public static func subsystem(_ name: String) -> Command {
        Command(text: "subsystem \(name)", classes: ["subsystem", name])
    }

    public static func portForward(_ target: String) -> Command {
        Command(text: "forward \(target)", classes: ["port_forward"])
    }
}

/// Where a connection lets its users forward ports (`ssh -L`, `ssh -D`): a list of `HOST:PORT`
/// patterns, where HOST is a name, an address, `*` or `*.suffix` and PORT a number or `*`.
/// Empty (the default) refuses every forward. Names compare case-insensitively; no DNS is done,
/// so `127.0.0.1:5432` does not permit `localhost:5432`.
public struct ForwardPermission: Sendable, Equatable {
    public struct Pattern: Sendable, Equatable {
        public var host: String
        public var port: Int?
    }

    public private(set) var patterns: [Pattern] = []

    public init() {}

    /// Parses the patterns; the error names the first bad one.
    public init(_ texts: [String]) throws(ForwardPatternError) {
        for text in texts {
            guard let colon = text.lastIndex(of: ":") else { throw ForwardPatternError(pattern: text) }
            var host = String(text[..<colon]).lowercased()
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            let portText = text[text.index(after: colon)...]
            let port: Int?
            if portText == "*" {
                port = nil
            } else if let value = Int(portText), (1...65535).contains(value) {
                port = value
            } else {
                throw ForwardPatternError(pattern: text)
            }
            let wildcard = host.dropFirst(host.hasPrefix("*.") ? 2 : 0)
            guard !host.isEmpty, host == "*" || !wildcard.contains("*"),
                  wildcard.allSatisfy({ $0.isLetter || $0.isNumber || "-.:_".contains($0) || $0 == "*" }) else {
                throw ForwardPatternError(pattern: text)
            }
            patterns.append(Pattern(host: host, port: port))
        }
    }

    public func permits(host: String, port: Int) -> Bool {
        let host = host.lowercased()
        return patterns.contains { pattern in
            if let wanted = pattern.port, wanted != port { return false }
            if pattern.host == "*" { return true }
            if pattern.host.hasPrefix("*.") { return host.hasSuffix(pattern.host.dropFirst()) && host.count > pattern.host.count - 1 }
            return host == pattern.host
        }
    }
}

public struct ForwardPatternError: Error, Sendable, CustomStringConvertible {
    public var pattern: String
    public var description: String { "'\(pattern)' is not HOST:PORT (HOST may be * or *.suffix, PORT may be *)" }
}
