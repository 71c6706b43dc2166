import Foundation
import NIOCore
import NIOEmbedded
import NIOWebSocket
@testable import Adapters

/// The Kubernetes request parser, exec stream messages inside real WebSocket frames (NIO's frame
/// decoder and aggregator, as the exec bridge installs them), exec statuses and Secret documents.
enum KubernetesFuzz {
    static func requestsAndStreams(_ input: [UInt8]) {
        var rest = input[...]
        var choices = Choices(&rest)
        let bytes = Array(rest)
        let text = String(decoding: bytes.prefix(1024), as: UTF8.self)

        // VERB PATH?QUERY on the first line.
        let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let parts = line.split(separator: " ", maxSplits: 1)
        if parts.count == 2 {
            let target = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let request = KubernetesRequest.parse(method: String(parts[0]), path: String(target[0]), query: target.count > 1 ? String(target[1]) : nil)
            _ = request.command
            _ = KubernetesProxyRules.execCommand(request.execCommand)
        }
        _ = KubernetesRequest.parseQuery(text)

        // The rest as WebSocket frames from the client, in random chunks.
        let subprotocol = ExecSubprotocol.allCases[choices.below(ExecSubprotocol.allCases.count)]
        let channel = EmbeddedChannel()
        do {
            try channel.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 16)),
                NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 64, maxAccumulatedFrameSize: 1 << 16),
            ])
            for chunk in choices.chunks(bytes, largest: 128) {
                try channel.writeInbound(ByteBuffer(bytes: chunk))
                while let frame = try channel.readInbound(as: WebSocketFrame.self) {
                    var data = frame.unmaskedData
                    let message = data.readBytes(length: data.readableBytes) ?? []
                    _ = try? ExecStreamMessage(message: message, protocol: subprotocol)
                    _ = try? ExecStatus(json: message)
                }
            }
        } catch {}
        _ = try? channel.finish()

        _ = ExecStreamMessage.parseResize(bytes[...])
        _ = try? SecretMasking.maskSecretJSON(bytes, maxBytes: 1 << 16, binaryPolicy: choices.below(2) == 0 ? .redact : .keep) { value in
            value.contains("@") ? "[EMAIL]" : nil
        }
    }
}
