import MaskEngine

/// Masks one output stream of an SSH channel (stdout or stderr) as it flows: exact across
/// packets and across terminal escape sequences (see ``TerminalMasker``), with an idle flush for
/// interactive sessions, and fail-closed on engine errors. Each stream is masked on its own: a
/// value wholly in one stream is always masked; a value split between stdout and stderr is not
/// seen (with a pty both are one stream).
package final class SSHOutputMasker {
    private let masker: TerminalMasker?
    /// Held bytes are released after this long without new output (interactive latency bound).
    package let idleFlush: Duration
    private var lastWrite: ContinuousClock.Instant?
    package private(set) var failed = false

    package init(choice: MaskingChoice, idleFlush: Duration = .milliseconds(50)) throws {
        switch choice {
        case .unmasked: masker = nil
        case .masked(let engine, _): masker = try TerminalMasker(engine: engine)
        }
        self.idleFlush = idleFlush
    }

    /// Masks `bytes`; returns what may be sent now. Throws (fail closed) when scanning fails.
    /// `now` starts the idle wait for what is held back.
    package func write(_ bytes: UnsafeRawBufferPointer, now: ContinuousClock.Instant = .now) throws -> [UInt8] {
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
    package var idleDeadline: ContinuousClock.Instant? {
        guard let masker, let lastWrite, masker.heldBack > 0 else { return nil }
        return lastWrite + idleFlush
    }

    /// Held bytes when the stream has been idle for `idleFlush`, else nothing.
    package func idleBytes(now: ContinuousClock.Instant = .now) throws -> [UInt8] {
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
    package func finish() throws -> [UInt8] {
        guard let masker else { return [] }
        var out: [UInt8] = []
        try masker.finish { out.append(contentsOf: $0) }
        return out
    }

    package var counts: [String: Int] { masker?.counts ?? [:] }
}

/// Rebuilds the line a user types into an interactive shell, so the guardrails can check it at
/// Enter. Limits (documented): it sees keystrokes, not the shell's own editing state — history
/// recall (arrow keys), tab completion and cursor movement inside the line are not replayed;
/// pasted multi-line input is checked line by line.
package struct TypedLine: Sendable {
    private var bytes: [UInt8] = []
    private var escape = 0
    package static let maximumLength = 16 * 1024

    package init() {}

    package enum Event: Equatable, Sendable {
        /// The user pressed Enter on this line.
        case line(String)
        /// The line was abandoned (Ctrl-C, Ctrl-U clears without event).
        case cancelled
    }

    /// Feeds typed bytes; returns the lines completed by them.
    package mutating func feed(_ input: some Sequence<UInt8>) -> [Event] {
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

    package var pending: String { String(decoding: bytes, as: UTF8.self) }
}

/// How an SSH request is described to the guardrails.
package enum SSHCommands {
    /// An `exec` request: the command line, class `exec` (plus `scp` or `sftp` when it is one).
    /// Rules match the raw text and the canonical forms of its shell-word parse; the parse adds
    /// the classes `dynamic` and `expansion` (see ``ShellCommandLine``).
    package static func exec(_ command: String) -> Command {
        var classes = ["exec"]
        let trimmed = command.drop { $0 == " " }
        if trimmed.hasPrefix("scp ") { classes.append("scp") }
        if trimmed.hasPrefix("rsync ") { classes.append("rsync") }
        let parsed = ShellCommandLine.parse(command)
        return Command(text: command, classes: classes + parsed.classes, forms: parsed.forms)
    }

    /// A line typed in an interactive shell, parsed like an exec command.
    package static func shellLine(_ line: String) -> Command {
        let parsed = ShellCommandLine.parse(line)
        return Command(text: line, classes: ["shell"] + parsed.classes, forms: parsed.forms)
    }

    package static func subsystem(_ name: String) -> Command {
        Command(text: "subsystem \(name)", classes: ["subsystem", name])
    }

    package static func portForward(_ target: String) -> Command {
        Command(text: "forward \(target)", classes: ["port_forward"])
    }
}

