/// Watches an SFTP (or legacy scp) stream to record file transfers by name and size — never by
/// content. SFTP packets are `uint32 length, byte type, …`; the observer reads OPEN requests
/// (file names), WRITE requests and DATA replies (sizes). Bounded: at most 1,000 names are kept
/// and a packet header is all it buffers.
package struct SFTPObserver: Sendable {
    package private(set) var opened: [String] = []
    package private(set) var bytesUploaded = 0
    package private(set) var bytesDownloaded = 0
    private var client = PacketReader()
    private var server = PacketReader()

    package init() {}

    struct PacketReader: Sendable {
        var header: [UInt8] = []
        var remaining = 0
        var body: [UInt8] = []
        static let keep = 4096

        /// Feeds bytes; calls `packet(type, firstBytesOfBody, fullLength)` per complete packet.
        mutating func feed(_ bytes: UnsafeRawBufferPointer, _ packet: (UInt8, [UInt8], Int) -> Void) {
            var index = 0
            while index < bytes.count {
                if remaining == 0 && header.count < 4 {
                    header.append(bytes[index])
                    index += 1
                    if header.count == 4 {
                        remaining = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
                        body.removeAll(keepingCapacity: true)
                        if remaining == 0 { header.removeAll() }
                    }
                    continue
                }
                let take = min(remaining, bytes.count - index)
                if body.count < Self.keep {
                    body.append(contentsOf: bytes[index..<(index + min(take, Self.keep - body.count))])
                }
                index += take
                remaining -= take
                if remaining == 0 {
                    let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
                    if let type = body.first { packet(type, Array(body.dropFirst()), length) }
                    header.removeAll(keepingCapacity: true)
                }
            }
        }
    }

    static func string(_ bytes: [UInt8], at offset: Int) -> (String, Int)? {
        guard bytes.count >= offset + 4 else { return nil }
        let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
        guard length >= 0, bytes.count >= offset + 4 + length else { return nil }
        return (String(decoding: bytes[(offset + 4)..<(offset + 4 + length)], as: UTF8.self), offset + 4 + length)
    }

    package mutating func clientBytes(_ bytes: UnsafeRawBufferPointer) {
        var opened = self.opened
        var uploaded = bytesUploaded
        client.feed(bytes) { type, body, length in
            switch type {
            case 3:  // SSH_FXP_OPEN: id, filename, pflags, attrs
                if let (name, _) = SFTPObserver.string(body, at: 4), opened.count < 1000 { opened.append(name) }
            case 6:  // SSH_FXP_WRITE: id, handle, offset, data
                if let (_, next) = SFTPObserver.string(body, at: 4) {
                    uploaded += max(0, length - 1 - (next + 8 + 4))
                }
            default: break
            }
        }
        self.opened = opened
        bytesUploaded = uploaded
    }

    package mutating func serverBytes(_ bytes: [UInt8]) {
        var downloaded = bytesDownloaded
        bytes.withUnsafeBytes { raw in
            server.feed(raw) { type, _, length in
                if type == 103 { downloaded += max(0, length - 1 - 4 - 4) }  // SSH_FXP_DATA: id, data
            }
        }
        bytesDownloaded = downloaded
    }

    /// The marker for the record: names and sizes only.
    package func summary(kind: String) -> SessionMarker {
        .transfer(kind: kind, files: opened.prefix(100).map { String($0.prefix(200)) }, bytesUp: Int(bytesUploaded), bytesDown: Int(bytesDownloaded))
    }
}
