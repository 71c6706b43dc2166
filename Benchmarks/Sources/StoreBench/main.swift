import Adapters
import Crypto
import Foundation
import Gateway

// Events per second a store sustains through the record writer's group commit: SESSIONS
// sessions append EVENTS events of BYTES bytes each as fast as they can (from as many threads),
// then the writer drains; the rate is events over the time until the last one is committed.
// Usage: StoreBench STORE_URL [EVENTS] [BYTES] [SESSIONS]   (postgres://… reads SLUICE_STORE_PASSWORD)
let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: StoreBench STORE_URL [EVENTS] [BYTES] [SESSIONS]\n".utf8))
    exit(2)
}
let url = arguments[1]
let total = arguments.count > 2 ? Int(arguments[2]) ?? 200_000 : 200_000
let size = arguments.count > 3 ? Int(arguments[3]) ?? 200 : 200
let sessions = arguments.count > 4 ? Int(arguments[4]) ?? 32 : 32

var configuration = GatewayConfiguration()
configuration.storeCredential.passwordEnv = url.hasPrefix("postgres") ? "SLUICE_STORE_PASSWORD" : nil
let store = try openStore(configuration, url: url)
let key = Curve25519.Signing.PrivateKey()
let signer = AuditSigner(key: key)
let writer = RecordWriter(store: store, signer: signer)
let clock = SystemClock()
let recorders = try (0..<sessions).map { index in
    try SessionRecorder(session: SessionRecord(id: "bench-\(UUID().uuidString)", user: "bench", groups: [], connection: "bench",
                                               kind: "postgres", peer: "127.0.0.1", startedAt: clock.nowMicros()),
                        writer: writer, signer: signer, clock: clock)
}
let payload = SessionEvent(.output, [UInt8](repeating: UInt8(ascii: "x"), count: size))
let perSession = total / sessions
let started = ContinuousClock.now
DispatchQueue.concurrentPerform(iterations: sessions) { index in
    for _ in 0..<perSession {
        guard recorders[index].append(payload) else { fatalError("the writer refused an append (backlog full)") }
    }
}
let appended = ContinuousClock.now
writer.drain()
let committed = ContinuousClock.now
for recorder in recorders { recorder.seal(reason: "done") }
writer.drain()
func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
let events = perSession * sessions
print(String(format: "store=%@ events=%d bytes=%d sessions=%d append_s=%.3f commit_s=%.3f events_per_s=%.0f",
             displayedStoreURL(url), events, size, sessions, seconds(appended - started), seconds(committed - started),
             Double(events) / seconds(committed - started)))
