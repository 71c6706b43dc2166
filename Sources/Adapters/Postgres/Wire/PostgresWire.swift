import NIOCore

/// A PostgreSQL protocol violation or limit: a code and lengths, never payload.
package typealias PostgresProtocolError = ProtocolViolation<PostgresViolation>

package enum PostgresViolation: String, Sendable {
    case messageTooLarge = "pg_message_too_large"
    case malformedStartup = "pg_malformed_startup"
    case unsupportedProtocol = "pg_unsupported_protocol"
    case malformedMessage = "pg_malformed_message"
    case unexpectedMessage = "pg_unexpected_message"
    case upstreamAuthentication = "pg_upstream_auth"
    case unsupportedAuthentication = "pg_unsupported_auth"
}

/// Protocol constants.
package enum PostgresWire {
    package static let protocolVersion3: Int32 = 196_608
    package static let sslRequestCode: Int32 = 80_877_103
    package static let gssEncRequestCode: Int32 = 80_877_104
    package static let cancelRequestCode: Int32 = 80_877_102
    /// PostgreSQL itself refuses startup packets over 10,000 bytes.
    package static let maximumStartupLength = 10_000
}

/// The first packet a client sends (no type byte).
package enum StartupPacket: Sendable, Equatable {
    case ssl
    case gssEncryption
    case cancel(processID: Int32, secretKey: Int32)
    case startup(parameters: [String: String])
}

/// A typed protocol message: its type byte and body (without the length word).
package struct PostgresMessage: Sendable {
    package var type: UInt8
    package var body: ByteBuffer

    package init(type: UInt8, body: ByteBuffer) {
        self.type = type
        self.body = body
    }

    /// The message framed for the wire.
    package func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(type)
        buffer.writeInteger(Int32(body.readableBytes + 4))
        var body = body
        buffer.writeBuffer(&body)
    }
}

/// Splits a byte stream into messages, with a maximum size (pull model, like swift-nio-ssh's
/// packet parser): `append` bytes, then call `next` until it returns nil.
package struct PostgresFrameDecoder: Sendable {
    package let maximumMessageSize: Int
    private var buffer: ByteBuffer
    /// Before the first message a startup packet (length-prefixed, no type byte) is expected.
    package var expectsStartup: Bool

    package init(maximumMessageSize: Int, expectsStartup: Bool, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.maximumMessageSize = maximumMessageSize
        self.expectsStartup = expectsStartup
        self.buffer = allocator.buffer(capacity: 0)
    }

    package var bufferedBytes: Int { buffer.readableBytes }
    /// The storage the decoder holds now (bounded: see ``retainedCapacity``).
    var bufferedCapacity: Int { buffer.capacity }

    /// Storage kept between reads; a buffer grown past it for one large message is let go.
    static let retainedCapacity = 256 << 10

    package mutating func append(_ bytes: inout ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
            bytes.moveReaderIndex(to: bytes.writerIndex)
        } else {
            // The part already read is dropped before the new bytes go in: without it, a stream
            // whose reads end mid-message keeps every byte of a long result in one buffer.
            if buffer.readerIndex > 0 { buffer.discardReadBytes() }
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next startup packet, when one is expected and complete.
    package mutating func nextStartup() throws -> StartupPacket? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        guard length >= 8, Int(length) <= PostgresWire.maximumStartupLength else {
            throw PostgresProtocolError(.malformedStartup, "startup packet length \(length)")
        }
        guard buffer.readableBytes >= Int(length) else { return nil }
        var packet = buffer.readSlice(length: Int(length))!
        packet.moveReaderIndex(forwardBy: 4)
        let code = packet.readInteger(as: Int32.self)!
        expectsStartup = false
        switch code {
        case PostgresWire.sslRequestCode:
            expectsStartup = true
            return .ssl
        case PostgresWire.gssEncRequestCode:
            expectsStartup = true
            return .gssEncryption
        case PostgresWire.cancelRequestCode:
            guard let pid = packet.readInteger(as: Int32.self), let key = packet.readInteger(as: Int32.self) else {
                throw PostgresProtocolError(.malformedStartup, "cancel request of \(length) bytes")
            }
            return .cancel(processID: pid, secretKey: key)
        case PostgresWire.protocolVersion3:
            var parameters: [String: String] = [:]
            while true {
                guard let key = packet.readNullTerminatedString() else {
                    throw PostgresProtocolError(.malformedStartup, "unterminated parameter name")
                }
                if key.isEmpty { break }
                guard let value = packet.readNullTerminatedString() else {
                    throw PostgresProtocolError(.malformedStartup, "unterminated parameter value")
                }
                guard parameters.count < 64 else { throw PostgresProtocolError(.malformedStartup, "too many parameters") }
                parameters[key] = value
            }
            return .startup(parameters: parameters)
        default:
            throw PostgresProtocolError(.unsupportedProtocol, "protocol code \(code)")
        }
    }

    /// The next complete typed message, or nil when more bytes are needed.
    package mutating func next() throws -> PostgresMessage? {
        guard buffer.readableBytes >= 5 else { return nil }
        let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)!
        let length = Int(buffer.getInteger(at: buffer.readerIndex + 1, as: Int32.self)!)
        guard length >= 4 else { throw PostgresProtocolError(.malformedMessage, "message length \(length)") }
        guard length <= maximumMessageSize else {
            throw PostgresProtocolError(.messageTooLarge, "message of \(length) bytes over the \(maximumMessageSize)-byte limit")
        }
        guard buffer.readableBytes >= length + 1 else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let body = buffer.readSlice(length: length - 4)!
        if buffer.readableBytes == 0 {
            if buffer.capacity > Self.retainedCapacity { buffer = ByteBuffer() } else { buffer.clear() }
        }
        return PostgresMessage(type: type, body: body)
    }
}

/// Builders for the messages the gateway writes itself.
package enum PostgresMessages {
    static func make(_ type: UInt8, _ build: (inout ByteBuffer) -> Void) -> PostgresMessage {
        var body = ByteBuffer()
        build(&body)
        return PostgresMessage(type: type, body: body)
    }

    /// Fields of ErrorResponse and NoticeResponse.
    package struct Fields: Sendable, Equatable {
        package var entries: [(UInt8, String)]

        package init(_ entries: [(UInt8, String)]) { self.entries = entries }

        package subscript(code: Character) -> String? {
            entries.first { $0.0 == code.asciiValue }?.1
        }

        package static func == (lhs: Fields, rhs: Fields) -> Bool {
            lhs.entries.elementsEqual(rhs.entries) { $0.0 == $1.0 && $0.1 == $1.1 }
        }
    }

    package static func error(sqlState: String, message: String, severity: String = "ERROR", detail: String? = nil,
                             hint: String? = nil) -> PostgresMessage {
        notice(type: UInt8(ascii: "E"), sqlState: sqlState, message: message, severity: severity, detail: detail, hint: hint)
    }

    package static func notice(type: UInt8 = UInt8(ascii: "N"), sqlState: String, message: String, severity: String = "NOTICE",
                              detail: String? = nil, hint: String? = nil) -> PostgresMessage {
        var entries: [(UInt8, String)] = [(UInt8(ascii: "S"), severity), (UInt8(ascii: "V"), severity),
                                          (UInt8(ascii: "C"), sqlState), (UInt8(ascii: "M"), message)]
        if let detail { entries.append((UInt8(ascii: "D"), detail)) }
        if let hint { entries.append((UInt8(ascii: "H"), hint)) }
        return fields(type: type, Fields(entries))
    }

    static func fields(type: UInt8, _ fields: Fields) -> PostgresMessage {
        make(type) { body in
            for (code, value) in fields.entries {
                body.writeInteger(code)
                body.writeNullTerminatedString(value)
            }
            body.writeInteger(UInt8(0))
        }
    }

    package static func parseFields(_ body: ByteBuffer) throws -> Fields {
        var body = body
        var entries: [(UInt8, String)] = []
        while let code = body.readInteger(as: UInt8.self), code != 0 {
            guard let value = body.readNullTerminatedString() else {
                throw PostgresProtocolError(.malformedMessage, "unterminated error field")
            }
            entries.append((code, value))
        }
        return Fields(entries)
    }

    package static func authentication(_ code: Int32, _ extra: [UInt8] = []) -> PostgresMessage {
        make(UInt8(ascii: "R")) { body in
            body.writeInteger(code)
            body.writeBytes(extra)
        }
    }

    package static func parameterStatus(_ name: String, _ value: String) -> PostgresMessage {
        make(UInt8(ascii: "S")) { body in
            body.writeNullTerminatedString(name)
            body.writeNullTerminatedString(value)
        }
    }

    package static func backendKeyData(processID: Int32, secretKey: Int32) -> PostgresMessage {
        make(UInt8(ascii: "K")) { body in
            body.writeInteger(processID)
            body.writeInteger(secretKey)
        }
    }

    package static func readyForQuery(_ status: UInt8) -> PostgresMessage {
        make(UInt8(ascii: "Z")) { $0.writeInteger(status) }
    }

    package static func query(_ text: String) -> PostgresMessage {
        make(UInt8(ascii: "Q")) { $0.writeNullTerminatedString(text) }
    }

    package static func password(_ bytes: [UInt8]) -> PostgresMessage {
        make(UInt8(ascii: "p")) { body in
            body.writeBytes(bytes)
            body.writeInteger(UInt8(0))
        }
    }

    package static func saslInitialResponse(mechanism: String, data: [UInt8]) -> PostgresMessage {
        make(UInt8(ascii: "p")) { body in
            body.writeNullTerminatedString(mechanism)
            body.writeInteger(Int32(data.count))
            body.writeBytes(data)
        }
    }

    package static func saslResponse(_ data: [UInt8]) -> PostgresMessage {
        make(UInt8(ascii: "p")) { $0.writeBytes(data) }
    }

    package static let terminate = make(UInt8(ascii: "X")) { _ in }

    /// A startup packet (length-prefixed, no type byte).
    package static func startup(_ parameters: [(String, String)]) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(PostgresWire.protocolVersion3)
        for (key, value) in parameters {
            body.writeNullTerminatedString(key)
            body.writeNullTerminatedString(value)
        }
        body.writeInteger(UInt8(0))
        var packet = ByteBuffer()
        packet.writeInteger(Int32(body.readableBytes + 4))
        packet.writeBuffer(&body)
        return packet
    }

    package static func cancelRequest(processID: Int32, secretKey: Int32) -> ByteBuffer {
        var packet = ByteBuffer()
        packet.writeInteger(Int32(16))
        packet.writeInteger(PostgresWire.cancelRequestCode)
        packet.writeInteger(processID)
        packet.writeInteger(secretKey)
        return packet
    }
}

/// One column of a RowDescription.
package struct ColumnDescription: Sendable, Equatable {
    package var name: String
    package var tableOID: UInt32
    package var attributeNumber: Int16
    package var typeOID: UInt32
    package var typeSize: Int16
    package var typeModifier: Int32
    /// 0 text, 1 binary.
    package var format: Int16

    /// A RowDescription message for `columns`.
    package static func rowDescription(_ columns: [ColumnDescription]) -> PostgresMessage {
        PostgresMessages.make(UInt8(ascii: "T")) { body in
            body.writeInteger(Int16(truncatingIfNeeded: columns.count))
            for column in columns {
                body.writeNullTerminatedString(column.name)
                body.writeMultipleIntegers(column.tableOID, column.attributeNumber, column.typeOID, column.typeSize,
                                           column.typeModifier, column.format)
            }
        }
    }

    package static func parseRowDescription(_ body: ByteBuffer) throws -> [ColumnDescription] {
        var body = body
        guard let count = body.readInteger(as: Int16.self), count >= 0 else {
            throw PostgresProtocolError(.malformedMessage, "RowDescription without a column count")
        }
        var columns: [ColumnDescription] = []
        columns.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let name = body.readNullTerminatedString(),
                  let (table, attribute, type, size, modifier, format) = body.readMultipleIntegers(
                      as: (UInt32, Int16, UInt32, Int16, Int32, Int16).self) else {
                throw PostgresProtocolError(.malformedMessage, "truncated RowDescription")
            }
            columns.append(ColumnDescription(name: name, tableOID: table, attributeNumber: attribute, typeOID: type,
                                             typeSize: size, typeModifier: modifier, format: format))
        }
        return columns
    }
}
