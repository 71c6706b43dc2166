/// A protocol violation or limit met by an adapter (Postgres, Kubernetes streams): a code that
/// names it and a detail of sizes and types, never payload bytes. The connection it happened on
/// ends with a clear error.
package struct ProtocolViolation<Code: RawRepresentable & Sendable & Hashable>: Error, Sendable, Equatable,
    CustomStringConvertible where Code.RawValue == String {
    package var code: Code
    package var detail: String

    package init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    package var description: String { "\(code.rawValue): \(detail)" }
}
