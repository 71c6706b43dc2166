import Adapters
import CLibSSH
import Foundation

/// One forwarded TCP connection (`ssh -L` / `ssh -D`): the user's `direct-tcpip` channel paired
/// with a `direct-tcpip` channel the gateway opens on its own upstream session. Bytes are relayed
/// as they are (a forwarded protocol is opaque, so it is not masked); the destination and the byte
/// counts are recorded when it closes. Each direction is bounded like the session channel.
final class SSHForward {
    let client: ssh_channel
    let upstream: ssh_channel
    let host: String
    let port: Int
    private(set) var toUpstream: [UInt8] = []
    private(set) var toClient: [UInt8] = []
    private(set) var bytesUp = 0
    private(set) var bytesDown = 0
    private var clientEOF = false
    private var upstreamEOF = false
    private var clientClosed = false
    private var upstreamClosed = false
    private var eofSentUp = false
    private var eofSentDown = false
    private let clientCallbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)
    private let upstreamCallbacks = UnsafeMutablePointer<ssh_channel_callbacks_struct>.allocate(capacity: 1)

    static let bufferLimit = 1 << 20

    init(client: ssh_channel, upstream: ssh_channel, host: String, port: Int) {
        self.client = client
        self.upstream = upstream
        self.host = host
        self.port = port
        let me = Unmanaged.passUnretained(self).toOpaque()
        for (callbacks, channel, isClient) in [(clientCallbacks, client, true), (upstreamCallbacks, upstream, false)] {
            callbacks.initialize(to: ssh_channel_callbacks_struct())
            callbacks.pointee.size = MemoryLayout<ssh_channel_callbacks_struct>.size
            callbacks.pointee.userdata = me
            if isClient {
                callbacks.pointee.channel_data_function = { _, _, data, length, _, userdata in
                    SSHForward.from(userdata).take(data, Int(length), fromClient: true)
                }
                callbacks.pointee.channel_eof_function = { _, _, userdata in SSHForward.from(userdata).clientEOF = true }
                callbacks.pointee.channel_close_function = { _, _, userdata in
                    let forward = SSHForward.from(userdata)
                    forward.clientEOF = true
                    forward.clientClosed = true
                }
            } else {
                callbacks.pointee.channel_data_function = { _, _, data, length, _, userdata in
                    SSHForward.from(userdata).take(data, Int(length), fromClient: false)
                }
                callbacks.pointee.channel_eof_function = { _, _, userdata in SSHForward.from(userdata).upstreamEOF = true }
                callbacks.pointee.channel_close_function = { _, _, userdata in
                    let forward = SSHForward.from(userdata)
                    forward.upstreamEOF = true
                    forward.upstreamClosed = true
                }
            }
            ssh_set_channel_callbacks(channel, callbacks)
        }
    }

    deinit {
        // libssh keeps a freed, still-open channel until the peer's close arrives and would call
        // back into this (gone) object: unhook first.
        ssh_remove_channel_callbacks(client, clientCallbacks)
        ssh_remove_channel_callbacks(upstream, upstreamCallbacks)
        ssh_channel_free(client)
        ssh_channel_free(upstream)
        clientCallbacks.deallocate()
        upstreamCallbacks.deallocate()
    }

    private static func from(_ pointer: UnsafeMutableRawPointer?) -> SSHForward {
        Unmanaged<SSHForward>.fromOpaque(pointer!).takeUnretainedValue()
    }

    /// Takes what fits; the rest stays in libssh (its window closes) until ``pump()`` pulls it.
    private func take(_ data: UnsafeMutableRawPointer?, _ length: Int, fromClient: Bool) -> Int32 {
        guard let data, length > 0 else { return 0 }
        let room = Self.bufferLimit - (fromClient ? toUpstream.count : toClient.count)
        let count = min(room, length)
        guard count > 0 else { return 0 }
        let bytes = UnsafeRawBufferPointer(start: data, count: count)
        if fromClient {
            toUpstream.append(contentsOf: bytes)
            bytesUp += count
        } else {
            toClient.append(contentsOf: bytes)
            bytesDown += count
        }
        return Int32(count)
    }

    /// Moves bytes both ways within the peers' windows and passes EOF and close along.
    /// Returns true once both channels are closed (the forward is over).
    func pump() -> Bool {
        pull(from: client, fromClient: true)
        pull(from: upstream, fromClient: false)
        write(toUpstream: true)
        write(toUpstream: false)
        if clientEOF && toUpstream.isEmpty && !eofSentUp && ssh_channel_is_open(upstream) != 0 {
            eofSentUp = true
            ssh_channel_send_eof(upstream)
        }
        if upstreamEOF && toClient.isEmpty && !eofSentDown && ssh_channel_is_open(client) != 0 {
            eofSentDown = true
            ssh_channel_send_eof(client)
        }
        // One side closed: close the other once what it is owed has gone out.
        if upstreamClosed && toClient.isEmpty && ssh_channel_is_open(client) != 0 { ssh_channel_close(client) }
        if clientClosed && toUpstream.isEmpty && ssh_channel_is_open(upstream) != 0 { ssh_channel_close(upstream) }
        return ssh_channel_is_open(client) == 0 && ssh_channel_is_open(upstream) == 0
    }

    func close() {
        if ssh_channel_is_open(client) != 0 { ssh_channel_close(client) }
        if ssh_channel_is_open(upstream) != 0 { ssh_channel_close(upstream) }
    }

    private func pull(from channel: ssh_channel, fromClient: Bool) {
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        while (fromClient ? toUpstream.count : toClient.count) + scratch.count <= Self.bufferLimit,
              ssh_channel_poll(channel, 0) > 0 {
            let count = scratch.withUnsafeMutableBytes { ssh_channel_read_nonblocking(channel, $0.baseAddress, UInt32($0.count), 0) }
            guard count > 0 else { break }
            _ = scratch.withUnsafeMutableBytes { take($0.baseAddress, Int(count), fromClient: fromClient) }
        }
    }

    /// Writes the head of one queue. libssh may run callbacks (which append to the queues) while
    /// it writes, so no access to a queue is held across a libssh call.
    private func write(toUpstream: Bool) {
        let channel = toUpstream ? upstream : client
        guard ssh_channel_is_open(channel) != 0 else {
            if toUpstream { self.toUpstream.removeAll() } else { toClient.removeAll() }
            return
        }
        while true {
            let window = Int(ssh_channel_window_size(channel))
            let chunk = Array((toUpstream ? self.toUpstream : toClient).prefix(min(window, 32 * 1024)))
            guard !chunk.isEmpty else { break }
            let written = chunk.withUnsafeBytes { ssh_channel_write(channel, $0.baseAddress, UInt32($0.count)) }
            guard written > 0 else { break }
            if toUpstream { self.toUpstream.removeFirst(Int(written)) } else { toClient.removeFirst(Int(written)) }
        }
    }
}
