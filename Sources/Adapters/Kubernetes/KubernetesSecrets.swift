import Foundation

/// Masking of the values of Kubernetes `Secret`s in JSON responses.
///
/// A generic stream masker sees `data` values base64-encoded, where no detector finds them; this
/// decodes each value, lets the caller mask the text, and encodes the result again.
package enum SecretMasking {
    /// What happens to a `data` value that is not base64 of UTF-8 text (a keystore, a
    /// certificate in DER, a value that does not decode).
    package enum BinaryPolicy: Sendable, Equatable {
        /// Replaced by base64 of ``SecretMasking/redactedText`` (fail closed: the default).
        case redact
        /// Left as it is.
        case keep
    }

    /// What a redacted value becomes (base64-encoded in `data`).
    package static let redactedText = "[REDACTED]"
    /// The annotation `kubectl apply` leaves on objects: for a Secret, a copy of its data.
    package static let lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

    /// Masks the Secret values of one JSON document: a `Secret`, a `SecretList`, a `List` (its
    /// items of kind `Secret`), or a watch event (`{"type":…,"object":{"kind":"Secret",…}}`; the
    /// caller frames a watch stream by its newlines and calls this once per event).
    ///
    /// Each `data` value is base64-decoded; UTF-8 text is passed to `mask`, whose result (nil:
    /// unchanged) is encoded again; other values follow `binaryPolicy`. `stringData` values are
    /// passed to `mask` as they are. The `kubectl.kubernetes.io/last-applied-configuration`
    /// annotation, which holds a copy of the data, is masked the same way (redacted as a whole
    /// under `.redact` when it is not a JSON object).
    ///
    /// The rest of the document is kept; it is serialized again (keys sorted) when a value
    /// changed, and returned byte for byte when none did.
    ///
    /// - Parameters:
    ///   - body: One JSON document.
    ///   - maxBytes: The largest body accepted.
    ///   - binaryPolicy: What happens to values that are not UTF-8 text.
    ///   - mask: Masks one value's text; nil leaves it unchanged. Its errors propagate (fail closed).
    /// - Returns: The masked document, or nil when it carries no Secret (the caller masks it as
    ///   generic JSON).
    /// - Throws: ``KubernetesProtocolError`` `bodyTooLarge` or `notJSON`, or what `mask` throws.
    package static func maskSecretJSON(_ body: [UInt8], maxBytes: Int, binaryPolicy: BinaryPolicy = .redact,
                                      mask: (String) throws -> String?) throws -> [UInt8]? {
        guard body.count <= maxBytes else {
            throw KubernetesProtocolError(.bodyTooLarge, "body of \(body.count) bytes, limit \(maxBytes)")
        }
        let document: Any
        do {
            document = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw KubernetesProtocolError(.notJSON, "body of \(body.count) bytes is not JSON")
        }
        guard var top = document as? [String: Any] else { return nil }

        var changed = false
        switch top["kind"] as? String {
        case "Secret":
            changed = try maskSecret(&top, binaryPolicy, mask)
        case "SecretList", "List":
            let onlySecrets = top["kind"] as? String == "List"
            guard var items = top["items"] as? [Any] else { return onlySecrets ? nil : body }
            var sawSecret = !onlySecrets
            for index in items.indices {
                guard var item = items[index] as? [String: Any] else { continue }
                if onlySecrets && item["kind"] as? String != "Secret" { continue }
                sawSecret = true
                if try maskSecret(&item, binaryPolicy, mask) {
                    items[index] = item
                    changed = true
                }
            }
            guard sawSecret else { return nil }
            top["items"] = items
        case nil:
            guard top["type"] is String, var object = top["object"] as? [String: Any],
                  object["kind"] as? String == "Secret" else { return nil }
            changed = try maskSecret(&object, binaryPolicy, mask)
            top["object"] = object
        default:
            return nil
        }

        guard changed else { return body }
        var out = try serialized(top)
        if body.last == UInt8(ascii: "\n") { out.append(UInt8(ascii: "\n")) }
        return out
    }

    /// Masks one Secret object in place; true when something changed.
    private static func maskSecret(_ secret: inout [String: Any], _ policy: BinaryPolicy,
                                   _ mask: (String) throws -> String?) throws -> Bool {
        var changed = false
        let redacted = Data(redactedText.utf8).base64EncodedString()

        if var data = secret["data"] as? [String: Any] {
            for (key, value) in data {
                if value is NSNull { continue }
                if let encoded = value as? String, let decoded = Data(base64Encoded: encoded),
                   let text = utf8Text(decoded) {
                    if let masked = try mask(text), masked != text {
                        data[key] = Data(masked.utf8).base64EncodedString()
                        changed = true
                    }
                } else if policy == .redact {
                    data[key] = redacted
                    changed = true
                }
            }
            if changed { secret["data"] = data }
        }

        if var stringData = secret["stringData"] as? [String: Any] {
            var stringChanged = false
            for (key, value) in stringData {
                if value is NSNull { continue }
                if let text = value as? String {
                    if let masked = try mask(text), masked != text {
                        stringData[key] = masked
                        stringChanged = true
                    }
                } else if policy == .redact {
                    stringData[key] = redactedText
                    stringChanged = true
                }
            }
            if stringChanged {
                secret["stringData"] = stringData
                changed = true
            }
        }

        if var metadata = secret["metadata"] as? [String: Any],
           var annotations = metadata["annotations"] as? [String: Any],
           let applied = annotations[lastAppliedAnnotation] as? String {
            var replacement: String?
            if let appliedData = applied.data(using: .utf8),
               var copy = (try? JSONSerialization.jsonObject(with: appliedData)) as? [String: Any] {
                if try maskSecret(&copy, policy, mask) {
                    replacement = String(decoding: try serialized(copy), as: UTF8.self)
                }
            } else if policy == .redact {
                replacement = redactedText
            } else if let masked = try mask(applied), masked != applied {
                replacement = masked
            }
            if let replacement {
                annotations[lastAppliedAnnotation] = replacement
                metadata["annotations"] = annotations
                secret["metadata"] = metadata
                changed = true
            }
        }
        return changed
    }

    /// The bytes as text when they are valid UTF-8.
    private static func utf8Text(_ data: Data) -> String? {
        let text = String(decoding: data, as: UTF8.self)
        return text.utf8.elementsEqual(data) ? text : nil
    }

    private static func serialized(_ object: [String: Any]) throws -> [UInt8] {
        do {
            return Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        } catch {
            throw KubernetesProtocolError(.notJSON, "masked document could not be serialized")
        }
    }
}
