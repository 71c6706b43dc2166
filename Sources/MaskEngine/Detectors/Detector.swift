/// How a detected value is replaced.
public enum MaskStyle: String, Sendable, CaseIterable, Codable {
    /// Replaced by the detector's label, e.g. `[EMAIL]`.
    case redact
    /// Keeps the last four alphanumerics (cards, IBANs, phones) and hides the rest.
    case partial
    /// A keyed HMAC-SHA256 token (`tok_…`): equal inputs give equal tokens under one key.
    case hash
    /// The whole value becomes SQL NULL (value masker); in a stream it is redacted.
    case null
}

/// The part of a match that is secret, when the pattern matches more than the secret
/// (e.g. `scheme://user:PASSWORD@host`): found by literals, not by a second regex.
public struct SecretSpan: Sendable, Equatable {
    /// Each literal is searched after the previous one; the secret starts after the last.
    public var after: [String]
    /// The secret ends before the last occurrence of this literal, when given.
    public var beforeLast: String?
    /// Bytes trimmed from both ends of the secret (quotes, spaces).
    public var trim: String

    public init(after: [String] = [], beforeLast: String? = nil, trim: String = "") {
        self.after = after
        self.beforeLast = beforeLast
        self.trim = trim
    }
}

/// How a match keeps being masked past the bytes its pattern covers.
public enum Extension: Sendable, Equatable {
    /// Following bytes in this byte set stay masked (e.g. a JWT's payload and signature).
    case byteClass(ByteSet)
    /// Everything up to and including the first match of `until` stays masked, at most `max` bytes
    /// (e.g. a PEM body up to its END line).
    case until(pattern: String, max: Int)
}

/// Words that must occur near a candidate for it to count.
public struct ContextRule: Sendable, Equatable {
    public var words: [String]
    /// How many bytes before the match start a word may end.
    public var before: Int
    /// How many bytes after the match end a word may end.
    public var after: Int
    /// Words that close the section a context word opened: when one occurs between the nearest
    /// context word before the match and the match, the context does not hold (e.g. the
    /// `metadata:` after a Kubernetes Secret's `data:` block).
    public var breakers: [String]

    public init(words: [String], before: Int, after: Int, breakers: [String] = []) {
        self.words = words
        self.before = before
        self.after = after
        self.breakers = breakers
    }
}

/// A named check that a candidate must pass before it is masked.
public struct ValidatorSpec: Sendable, Equatable {
    public var name: String
    /// Numeric parameters (e.g. `min_entropy`), by name.
    public var parameters: [String: Double]

    public init(name: String, parameters: [String: Double] = [:]) {
        self.name = name
        self.parameters = parameters
    }
}

/// An example from a corpus file that must (or must not) be detected.
public struct DetectorExample: Sendable, Equatable {
    public var text: String
    public var line: Int
}

/// One detector as written in a corpus file.
public struct Detector: Sendable, Equatable {
    public var id: String
    public var category: String
    /// The text of the redaction, e.g. `EMAIL` for `[EMAIL]`.
    public var label: String
    public var patterns: [String]
    /// Cheap patterns that stand in for `patterns` in the stream prefilter. Contract: every match
    /// of a pattern contains the end of a trigger match after its first byte (the trigger ends in
    /// `(start, end]`). Empty: the patterns themselves are the prefilter.
    public var triggers: [String] = []
    /// With triggers: how many bytes before a match's start its trigger may end instead
    /// (e.g. a context word: `aws_secret_access_key = VALUE`). 0: the trigger ends inside the match.
    public var triggerBefore = 0
    /// A built-in candidate finder instead of a prefilter: `digit_run` (see `DigitRunFinder`).
    public var finder: String?
    public var caseless: Bool
    public var validator: ValidatorSpec?
    /// Every rule must hold.
    public var context: [ContextRule]
    public var style: MaskStyle
    /// The widest match masked; required when a pattern is unbounded.
    public var maxWidth: Int?
    public var span: SecretSpan?
    public var extend: Extension?
    public var shouldMatch: [DetectorExample]
    public var shouldNotMatch: [DetectorExample]
    /// The corpus file and line it was defined at, for messages.
    public var source: String

    public init(id: String, category: String, label: String? = nil, patterns: [String], triggers: [String] = [],
                triggerBefore: Int = 0, caseless: Bool = false,
                validator: ValidatorSpec? = nil, context: [ContextRule] = [], style: MaskStyle = .redact,
                maxWidth: Int? = nil, span: SecretSpan? = nil, extend: Extension? = nil,
                shouldMatch: [DetectorExample] = [], shouldNotMatch: [DetectorExample] = [], source: String = "") {
        self.id = id
        self.category = category
        self.label = label ?? id.uppercased()
        self.patterns = patterns
        self.triggers = triggers
        self.triggerBefore = triggerBefore
        self.caseless = caseless
        self.validator = validator
        self.context = context
        self.style = style
        self.maxWidth = maxWidth
        self.span = span
        self.extend = extend
        self.shouldMatch = shouldMatch
        self.shouldNotMatch = shouldNotMatch
        self.source = source
    }
}

/// A set of byte values, tested in constant time.
public struct ByteSet: Sendable, Equatable {
    private var bits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    public init() {}

    /// Parses a character-class body such as `A-Za-z0-9_.-` (ASCII ranges and single characters;
    /// `\\` escapes the next character; a leading `^` negates the set).
    public init?(classBody: String) {
        var bytes = Array(classBody.utf8)
        let negated = bytes.first == UInt8(ascii: "^")
        if negated { bytes.removeFirst() }
        defer { if negated { bits = (~bits.0, ~bits.1, ~bits.2, ~bits.3) } }
        var index = 0
        func next() -> UInt8? {
            guard index < bytes.count else { return nil }
            var byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\\") {
                guard index < bytes.count else { return nil }
                byte = bytes[index]
                index += 1
            }
            return byte
        }
        while index < bytes.count {
            guard let low = next() else { return nil }
            if index + 1 < bytes.count, bytes[index] == UInt8(ascii: "-") {
                index += 1
                guard let high = next(), high >= low else { return nil }
                for byte in low...high { insert(byte) }
            } else {
                insert(low)
            }
        }
    }

    public mutating func insert(_ byte: UInt8) {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: bits.0 |= bit
        case 1: bits.1 |= bit
        case 2: bits.2 |= bit
        default: bits.3 |= bit
        }
    }

    @inline(__always)
    public func contains(_ byte: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: return bits.0 & bit != 0
        case 1: return bits.1 & bit != 0
        case 2: return bits.2 & bit != 0
        default: return bits.3 & bit != 0
        }
    }

    public static func == (lhs: ByteSet, rhs: ByteSet) -> Bool {
        lhs.bits.0 == rhs.bits.0 && lhs.bits.1 == rhs.bits.1 && lhs.bits.2 == rhs.bits.2 && lhs.bits.3 == rhs.bits.3
    }
}
