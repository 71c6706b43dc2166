import MaskEngine

/// The streams of a terminal session (an SSH channel, a Kubernetes exec), sans-IO: output masked
/// per stream as it flows (exact across packets and escape sequences, see ``TerminalMasker``),
/// held bytes released after `idleFlush` without output, each stream finished once, output
/// recorded within a ``RecordBudget``, input recorded masked with the recording profile. A
/// masking error throws: the caller ends the session without sending anything unscanned.
///
/// Time comes in as arguments; nothing here reads a clock, blocks or writes to a socket.
package final class TerminalRelay {
    package enum Stream: Int, Sendable, CaseIterable {
        case stdout, stderr
    }

    package let session: any GovernedSession
    package let idleFlush: Duration
    /// Typed input is recorded after this long without typing (so the live view keeps up).
    package static let inputIdleFlush = Duration.milliseconds(200)
    private var maskers: [SSHOutputMasker?]
    private var budget: RecordBudget
    /// File transfers: stdout is a binary protocol, relayed as it is and not recorded.
    private let recordsStdout: Bool
    private var input: SSHOutputMasker?
    package private(set) var failed = false

    /// - Parameters:
    ///   - stdout, stderr: how each stream is masked (a file transfer's stdout passes unmasked).
    ///   - recordsStdout: false for file transfers (recorded by name and size elsewhere).
    package init(session: any GovernedSession, stdout: MaskingChoice, stderr: MaskingChoice, recordCap: Int,
                idleFlush: Duration, recordsStdout: Bool = true) throws {
        self.session = session
        self.idleFlush = idleFlush
        maskers = [try SSHOutputMasker(choice: stdout, idleFlush: idleFlush), try SSHOutputMasker(choice: stderr, idleFlush: idleFlush)]
        budget = RecordBudget(cap: recordCap)
        self.recordsStdout = recordsStdout
        input = try session.recordingEngine.map { try SSHOutputMasker(choice: .masked(engine: $0, forced: nil), idleFlush: Self.inputIdleFlush) }
    }

    /// Whether `stream` has been finished.
    package func isFinished(_ stream: Stream) -> Bool { maskers[stream.rawValue] == nil }

    /// Masks output of `stream`; returns what may be sent now (and records it). Throws when it
    /// cannot be masked, or for output after the stream was finished (it could not be scanned in
    /// order).
    package func output(_ bytes: UnsafeRawBufferPointer, on stream: Stream, now: ContinuousClock.Instant) throws -> [UInt8] {
        guard let masker = maskers[stream.rawValue] else {
            failed = true
            throw TerminalRelayError(reason: "output after the end of its stream")
        }
        do {
            let out = try masker.write(bytes, now: now)
            deliver(out, on: stream)
            return out
        } catch {
            failed = true
            throw error
        }
    }

    package func output(_ bytes: [UInt8], on stream: Stream, now: ContinuousClock.Instant) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try output($0, on: stream, now: now) }
    }

    /// Bytes held back longer than `idleFlush` (interactive latency bound), per stream; typed
    /// input held by the recording masker is recorded.
    package func idle(now: ContinuousClock.Instant) throws -> [(Stream, [UInt8])] {
        if let input, let bytes = try? input.idleBytes(now: now), !bytes.isEmpty { session.record(SessionEvent(.input, bytes)) }
        var out: [(Stream, [UInt8])] = []
        for stream in Stream.allCases {
            guard let masker = maskers[stream.rawValue] else { continue }
            do {
                let bytes = try masker.idleBytes(now: now)
                if !bytes.isEmpty {
                    deliver(bytes, on: stream)
                    out.append((stream, bytes))
                }
            } catch {
                failed = true
                throw error
            }
        }
        return out
    }

    /// When ``idle(now:)`` may next have something to release; nil when nothing is held.
    package func nextIdleDeadline() -> ContinuousClock.Instant? {
        (maskers + [input]).compactMap { $0?.idleDeadline }.min()
    }

    /// Ends `stream`: what it still holds, once (later calls return nothing).
    package func finish(_ stream: Stream) throws -> [UInt8] {
        guard let masker = maskers[stream.rawValue] else { return [] }
        maskers[stream.rawValue] = nil
        guard !masker.failed else { return [] }
        do {
            let rest = try masker.finish()
            deliver(rest, on: stream)
            return rest
        } catch {
            failed = true
            throw error
        }
    }

    /// Records what the user typed or piped in, masked with the recording profile (typed or
    /// pasted secrets are not stored raw). Values split across packets are still found.
    package func recordInput<C: Collection>(_ bytes: C, now: ContinuousClock.Instant) where C.Element == UInt8 {
        guard let input, !bytes.isEmpty else { return }
        let masked: [UInt8]
        do {
            masked = try Array(bytes).withUnsafeBytes { try input.write($0, now: now) }
        } catch {
            // The record loses the input from here, never the session its output.
            self.input = nil
            session.mark(.error("input could not be masked for the record"))
            return
        }
        if !masked.isEmpty { session.record(SessionEvent(.input, masked)) }
    }

    /// The input held back by the recording masker, at the end of input.
    package func finishInput() {
        guard let input else { return }
        self.input = nil
        if let rest = try? input.finish(), !rest.isEmpty { session.record(SessionEvent(.input, rest)) }
    }

    private func deliver(_ bytes: [UInt8], on stream: Stream) {
        guard !bytes.isEmpty, stream == .stderr || recordsStdout else { return }
        session.recordOutput(bytes, within: &budget)
    }
}

package struct TerminalRelayError: Error, Sendable, CustomStringConvertible {
    package var reason: String
    package var description: String { reason }
}
