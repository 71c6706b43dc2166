import Foundation

/// What a validator sees of a candidate: its bytes, the part that is secret, and up to two bytes
/// on each side (`nil` at the edge of the stream or value).
public struct CandidateView {
    public var bytes: UnsafeRawBufferPointer
    /// The secret part of `bytes` (all of it unless the detector has a `span`).
    public var secret: Range<Int>
    /// `before.0` is the byte just before the match, `before.1` the one before that.
    public var before: (UInt8?, UInt8?)
    /// `after.0` is the byte just after the match, `after.1` the one after that.
    public var after: (UInt8?, UInt8?)
    /// Up to ``CandidateView/precedingLimit`` bytes before the match, the nearest in the low byte;
    /// `precedingCount` of them are present (fewer at the start of the stream or value).
    public var preceding: UInt64 = 0
    public var precedingCount = 0
    /// How many bytes before a match a validator may look at.
    public static let precedingLimit = 8

    public init(bytes: UnsafeRawBufferPointer, secret: Range<Int>? = nil, before: (UInt8?, UInt8?) = (nil, nil),
                after: (UInt8?, UInt8?) = (nil, nil)) {
        self.bytes = bytes
        self.secret = secret ?? 0..<bytes.count
        self.before = before
        self.after = after
        if let b0 = before.0 {
            preceding = UInt64(b0)
            precedingCount = 1
            if let b1 = before.1 {
                preceding |= UInt64(b1) << 8
                precedingCount = 2
            }
        }
    }

    /// The byte `index` places before the match (0: the byte just before it), if present.
    public func precedingByte(_ index: Int) -> UInt8? {
        index < precedingCount ? UInt8(truncatingIfNeeded: preceding >> UInt64(8 * index)) : nil
    }

    var secretBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[secret]) }
}

/// The checks a candidate must pass before it is masked. Every validator is a pure function of
/// the candidate, so the outcome never depends on how a stream was chunked.
/// A validator with its name and parameters resolved (`ValidatorSpec` keeps them as strings).
enum CompiledValidator: Sendable {
    case luhn, iban, ssn, jwt, githubChecksum, ipv4, ipv6, phone, date, unknown
    case entropy(EntropyParameters)
    case base64(Base64Parameters)

    init(_ spec: ValidatorSpec) {
        switch spec.name {
        case "luhn": self = .luhn
        case "iban": self = .iban
        case "ssn": self = .ssn
        case "jwt": self = .jwt
        case "github_checksum": self = .githubChecksum
        case "entropy": self = .entropy(EntropyParameters(spec.parameters))
        case "ipv4": self = .ipv4
        case "ipv6": self = .ipv6
        case "phone": self = .phone
        case "base64": self = .base64(Base64Parameters(spec.parameters))
        case "date": self = .date
        default: self = .unknown
        }
    }
}

/// The `entropy` validator's parameters, with their defaults.
struct EntropyParameters: Sendable {
    let isolated: Bool
    let minLength: Int
    let minEntropy: Double
    let minClasses: Int

    init(_ parameters: [String: Double]) {
        isolated = parameters["isolated"] ?? 0 > 0
        minLength = Int(parameters["min_length"] ?? 8)
        minEntropy = parameters["min_entropy"] ?? 3.0
        minClasses = Int(parameters["min_classes"] ?? 2)
    }
}

/// The `base64` validator's parameters, with their defaults.
struct Base64Parameters: Sendable {
    let minLength: Int
    let textBelow: Int

    init(_ parameters: [String: Double]) {
        minLength = Int(parameters["min_length"] ?? 4)
        textBelow = Int(parameters["text_below"] ?? 0)
    }
}

public enum Validators {
    public static let known: Set<String> = [
        "luhn", "iban", "ssn", "jwt", "github_checksum", "entropy", "ipv4", "ipv6", "phone", "base64", "date",
    ]

    public static func validate(_ spec: ValidatorSpec, _ candidate: CandidateView) -> Bool {
        validate(CompiledValidator(spec), candidate)
    }

    /// The hot path's form: the name and parameters were resolved once, when the engine was built.
    static func validate(_ validator: CompiledValidator, _ candidate: CandidateView) -> Bool {
        switch validator {
        case .luhn: return luhn(candidate)
        case .iban: return iban(candidate.secretBytes)
        case .ssn: return ssn(candidate.secretBytes)
        case .jwt: return jwt(candidate.secretBytes)
        case .githubChecksum: return githubChecksum(candidate.secretBytes)
        case .entropy(let parameters): return entropy(candidate, parameters)
        case .ipv4: return ipv4(candidate)
        case .ipv6: return ipv6(candidate)
        case .phone: return phone(candidate)
        case .base64(let parameters): return base64(candidate.secretBytes, parameters)
        case .date: return date(candidate.secretBytes)
        case .unknown: return false
        }
    }

    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b &- 48 < 10 }
    @inline(__always) static func isAlpha(_ b: UInt8) -> Bool { (b | 0x20) &- 97 < 26 }
    @inline(__always) static func isAlnum(_ b: UInt8) -> Bool { isDigit(b) || isAlpha(b) }
    @inline(__always) static func isHex(_ b: UInt8) -> Bool { isDigit(b) || (b | 0x20) &- 97 < 6 }

    // MARK: Payment cards

    /// Luhn over the digits (separators ignored), 13–19 digits, not one repeated digit, and the
    /// same separator used throughout.
    ///
    /// A number may sit next to other numbers (a date or an SSN before it, an expiry and a CVV
    /// after it), but a grouped number (`4111 1111 …`) must not continue a run of groups in its own
    /// layout: when its separator is preceded by a group of four (`1234`, `DE89`: alphanumerics
    /// ending in two digits) that stands alone, it is a group of an IBAN or an account number.
    static func luhn(_ candidate: CandidateView) -> Bool {
        let bytes = candidate.secretBytes
        let own = bytes.first(where: { !isDigit($0) }) ?? 0
        if own != 0, candidate.precedingByte(0) == own, groupOfFourBefore(candidate, separator: own) { return false }
        var sum = 0
        var count = 0
        var separator: UInt8 = 0
        var first: UInt8 = 0
        var allSame = true
        for byte in bytes.reversed() {
            if isDigit(byte) {
                var digit = Int(byte - 48)
                if count & 1 == 1 {
                    digit *= 2
                    if digit > 9 { digit -= 9 }
                }
                sum += digit
                if count == 0 { first = byte } else if byte != first { allSame = false }
                count += 1
            } else {
                if separator == 0 { separator = byte } else if separator != byte { return false }
            }
        }
        return (13...19).contains(count) && sum % 10 == 0 && !allSame
    }

    /// Bytes 1–4 before the match are a group (alphanumerics, the two nearest digits) and byte 5
    /// is absent, the same separator, or a delimiter that is not part of a date or time.
    static func groupOfFourBefore(_ candidate: CandidateView, separator: UInt8) -> Bool {
        for index in 1...4 {
            guard let byte = candidate.precedingByte(index), isAlnum(byte), index > 2 || isDigit(byte) else { return false }
        }
        guard let fifth = candidate.precedingByte(5) else { return true }
        if fifth == separator { return true }
        return !isAlnum(fifth) && !"-/.:".utf8.contains(fifth)
    }

    // MARK: IBAN

    /// ISO 13616 lengths per country.
    static let ibanLengths: [String: Int] = [
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
        "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
        "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
        "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
        "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
        "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
        "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25,
        "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    ]

    /// Country length and the mod-97 check of ISO 7064, ignoring spaces.
    /// (No allocation: the characters go to a 34-byte buffer on the stack.)
    static func iban(_ bytes: UnsafeRawBufferPointer) -> Bool {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 34) { chars in
            var count = 0
            for byte in bytes where byte != UInt8(ascii: " ") {
                guard isAlnum(byte), count < 34 else { return false }
                chars[count] = isAlpha(byte) ? byte & 0xDF : byte
                count += 1
            }
            guard count >= 15, isAlpha(chars[0]), isAlpha(chars[1]), isDigit(chars[2]), isDigit(chars[3]) else { return false }
            let country = String(decoding: UnsafeBufferPointer(rebasing: chars[0..<2]), as: UTF8.self)
            guard let expected = ibanLengths[country], expected == count else { return false }
            // The first four characters move to the end.
            var remainder = 0
            for index in 0..<count {
                let byte = chars[(index + 4) % count]
                if isDigit(byte) {
                    remainder = (remainder * 10 + Int(byte - 48)) % 97
                } else {
                    let value = Int(byte - 65) + 10
                    remainder = (remainder * 100 + value) % 97
                }
            }
            return remainder == 1
        }
    }

    // MARK: US SSN

    /// Area not 000, 666 or 900–999; group not 00; serial not 0000.
    static func ssn(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var area = 0, group = 0, serial = 0
        var count = 0
        for byte in bytes where isDigit(byte) {
            let digit = Int(byte - 48)
            switch count {
            case 0..<3: area = area * 10 + digit
            case 3..<5: group = group * 10 + digit
            case 5..<9: serial = serial * 10 + digit
            default: return false
            }
            count += 1
        }
        guard count == 9 else { return false }
        if area == 0 || area == 666 || area >= 900 { return false }
        if group == 0 || serial == 0 { return false }
        // Numbers published in advertising and never issued.
        if area == 78 && group == 5 && serial == 1120 { return false }
        if area == 219 && group == 9 && serial == 9999 { return false }
        return true
    }

    // MARK: JWT

    /// The header (up to the first `.`) must base64url-decode to a JSON object with `alg`.
    static func jwt(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let dot = bytes.firstIndex(of: UInt8(ascii: ".")), dot >= 8, dot <= 2048 else { return false }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: dot) { header in
            guard let count = base64URLDecode(UnsafeRawBufferPointer(rebasing: bytes[0..<dot]), into: header) else { return false }
            return isJSONObjectWithAlg(UnsafeBufferPointer(rebasing: header[0..<count]))
        }
    }

    /// The decoded length, or nil for a byte outside base64url or an impossible length.
    static func base64URLDecode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        guard bytes.count % 4 != 1 else { return nil }
        var accumulator: UInt32 = 0
        var bits = 0
        var count = 0
        for byte in bytes {
            let value: UInt8
            switch byte {
            case 65...90: value = byte - 65
            case 97...122: value = byte - 71
            case 48...57: value = byte + 4
            case 45, 43: value = 62  // '-' (and '+' of padded variants)
            case 95, 47: value = 63  // '_' (and '/')
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out[count] = UInt8(truncatingIfNeeded: accumulator >> UInt32(bits))
                count += 1
            }
        }
        return count
    }

    private static let algKey: [UInt8] = Array("\"alg\"".utf8)

    /// A JSON object (`{` … `}`) with an `"alg"` member whose value is a string.
    static func isJSONObjectWithAlg(_ json: UnsafeBufferPointer<UInt8>) -> Bool {
        let space: (UInt8) -> Bool = { $0 == 32 || $0 == 9 || $0 == 10 || $0 == 13 }
        guard let first = json.firstIndex(where: { !space($0) }), json[first] == UInt8(ascii: "{"),
              let last = json.lastIndex(where: { !space($0) }), json[last] == UInt8(ascii: "}") else { return false }
        let key = algKey
        var index = first
        while index + key.count <= last {
            if json[index] == key[0], (0..<key.count).allSatisfy({ json[index + $0] == key[$0] }) {
                var next = index + key.count
                while next < last, space(json[next]) { next += 1 }
                guard next < last, json[next] == UInt8(ascii: ":") else { return false }
                next += 1
                while next < last, space(json[next]) { next += 1 }
                return next < last && json[next] == UInt8(ascii: "\"")
            }
            index += 1
        }
        return false
    }

    // MARK: GitHub

    private static let base62: [UInt8] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// Classic tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`): the last 6 characters are the
    /// base62 CRC32 of the 30 before them. Fine-grained `github_pat_` tokens have no public checksum
    /// and pass on their shape.
    static func githubChecksum(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if bytes.starts(with: "github_pat_".utf8) { return bytes.count >= 82 }
        guard bytes.count == 40, bytes[3] == UInt8(ascii: "_") else { return false }
        let body = UnsafeRawBufferPointer(rebasing: bytes[4..<34])
        // The checksum's six base62 digits, most significant first, zero-padded: compared from the
        // last digit back.
        var value = UInt64(CRC32.checksum(body))
        for index in stride(from: 39, through: 34, by: -1) {
            guard bytes[index] == base62[Int(value % 62)] else { return false }
            value /= 62
        }
        return value == 0
    }

    // MARK: Entropy

    /// Shannon entropy in bits per byte of the secret, at least `min_entropy` (default 3.0), with
    /// at least `min_length` bytes (default 8) and `min_classes` of lower/upper/digit/other (default 2).
    /// With `isolated: 1` the candidate must not be glued to more base64 characters.
    static func entropy(_ candidate: CandidateView, parameters: [String: Double]) -> Bool {
        entropy(candidate, EntropyParameters(parameters))
    }

    static func entropy(_ candidate: CandidateView, _ parameters: EntropyParameters) -> Bool {
        if parameters.isolated {
            let base64: (UInt8) -> Bool = { isAlnum($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "/") }
            if let b = candidate.before.0, base64(b) { return false }
            if let a = candidate.after.0, base64(a) || a == UInt8(ascii: "=") { return false }
        }
        let bytes = candidate.secretBytes
        if isPlaceholder(bytes) { return false }
        guard bytes.count >= parameters.minLength else { return false }
        // The cheap test first (both must hold).
        return characterClasses(bytes) >= parameters.minClasses && shannonEntropy(bytes) >= parameters.minEntropy
    }

    /// Template placeholders such as `${TOKEN}`, `{{ .Values.x }}`, `<password>`, `%(pw)s`, `****`,
    /// `[REDACTED]`, `$DB_PASSWORD`, and references to a value kept elsewhere (`var.db_password`,
    /// `process.env.DB_PASSWORD`, `os.environ["PW"]`).
    static func isPlaceholder(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let first = bytes.first, let last = bytes.last else { return true }
        if bytes.starts(with: "${".utf8) || bytes.starts(with: "{{".utf8) || bytes.starts(with: "%(".utf8) { return true }
        if first == UInt8(ascii: "<"), last == UInt8(ascii: ">") { return true }
        let identifier: (UInt8) -> Bool = { isAlnum($0) || $0 == UInt8(ascii: "_") }
        if first == UInt8(ascii: "["), last == UInt8(ascii: "]"), bytes.count > 2,
           bytes[1..<(bytes.count - 1)].allSatisfy({ isAlpha($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: " ") }) { return true }
        if bytes.allSatisfy({ $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "x") || $0 == UInt8(ascii: "X") }) { return true }
        // `$DB_PASSWORD`: a shell or compose variable.
        if first == UInt8(ascii: "$"), bytes.count > 1,
           bytes.dropFirst().allSatisfy({ isDigit($0) || $0 &- 65 < 26 || $0 == UInt8(ascii: "_") }) { return true }
        // References: a known root, then identifiers, dots, brackets and quotes only.
        for root in referenceRoots where bytes.starts(with: root) && bytes.count > root.count {
            let rest = bytes[root.count...]
            if rest.allSatisfy({ identifier($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]")
                || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "'") || $0 == UInt8(ascii: "(") || $0 == UInt8(ascii: ")") }) {
                return true
            }
        }
        return false
    }

    private static let referenceRoots: [[UInt8]] = ["var.", "local.", "module.", "data.", "each.", "random_password.", "process.env.", "os.environ",
                                                     "os.getenv(", "ENV[", "ENV.fetch(", "System.getenv(", "env("].map { Array($0.utf8) }

    static func shannonEntropy(_ bytes: UnsafeRawBufferPointer) -> Double {
        guard !bytes.isEmpty else { return 0 }
        // 32-bit counts: 1 KiB, which `withUnsafeTemporaryAllocation` keeps on the stack (a table of
        // 256 `Int`s went to the heap on every call).
        guard bytes.count <= Int(UInt32.max) else { return 0 }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 256) { counts in
            // Only the counts of bytes that occur are written (a bitmap says which), and the sum
            // runs over them in byte order, as a pass over all 256 counts would: the same
            // arithmetic in the same order, so the same result to the last bit.
            var seen: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            withUnsafeMutableBytes(of: &seen) { raw in
                let words = raw.bindMemory(to: UInt64.self)
                for byte in bytes {
                    let word = Int(byte >> 6)
                    let bit = UInt64(1) << UInt64(byte & 63)
                    if words[word] & bit == 0 {
                        words[word] |= bit
                        counts[Int(byte)] = 1
                    } else {
                        counts[Int(byte)] += 1
                    }
                }
            }
            let total = Double(bytes.count)
            var bits = 0.0
            withUnsafeBytes(of: &seen) { raw in
                for (index, var word) in raw.bindMemory(to: UInt64.self).enumerated() {
                    while word != 0 {
                        let byte = index * 64 + word.trailingZeroBitCount
                        word &= word - 1
                        let p = Double(counts[byte]) / total
                        bits -= p * log2(p)
                    }
                }
            }
            return bits
        }
    }

    static func characterClasses(_ bytes: UnsafeRawBufferPointer) -> Int {
        var lower = false, upper = false, digit = false, other = false
        for byte in bytes {
            if isDigit(byte) { digit = true } else if byte &- 97 < 26 { lower = true } else if byte &- 65 < 26 { upper = true } else { other = true }
        }
        return (lower ? 1 : 0) + (upper ? 1 : 0) + (digit ? 1 : 0) + (other ? 1 : 0)
    }

    // MARK: Network addresses

    /// Four decimal octets 0–255 without leading zeros, not part of a longer dotted number
    /// (a version such as `1.2.3.4.5`).
    static func ipv4(_ candidate: CandidateView) -> Bool {
        if let b = candidate.before.0, b == UInt8(ascii: "."), let c = candidate.before.1, isDigit(c) { return false }
        // A version after a product token: Gecko's `rv:1.9.1.20`, `Firefox/1.0.2.3`, `jdk-11.0.2.9`.
        if let b = candidate.before.0, let c = candidate.before.1, isAlpha(c) {
            if b == UInt8(ascii: ":") && (c | 0x20) == UInt8(ascii: "v") { return false }
            if b == UInt8(ascii: "/") || b == UInt8(ascii: "-") { return false }
        }
        if let a = candidate.after.0, a == UInt8(ascii: "."), let c = candidate.after.1, isDigit(c) { return false }
        let bytes = candidate.secretBytes
        var octets = 0
        var value = 0
        var digits = 0
        var leadingZero = false
        for byte in bytes {
            if isDigit(byte) {
                if digits == 0 { leadingZero = byte == 48 } else if leadingZero { return false }
                value = value * 10 + Int(byte - 48)
                digits += 1
                if digits > 3 || value > 255 { return false }
            } else if byte == UInt8(ascii: ".") {
                guard digits > 0 else { return false }
                octets += 1
                value = 0
                digits = 0
            } else {
                return false
            }
        }
        return digits > 0 && octets == 3
    }

    /// A well-formed IPv6 address: eight groups, or fewer around one `::`, optionally ending in a
    /// dotted IPv4; at least two colons; not a time like `12:30:45` (all-decimal groups without `::`).
    static func ipv6(_ candidate: CandidateView) -> Bool {
        if let a = candidate.after.0, isHex(a) || a == UInt8(ascii: ":") { return false }
        if let b = candidate.before.0, isHex(b) { return false }
        // A colon before the address is the end of a label (`addr:fe80::1`), not of a longer
        // address, when no hex digit or colon comes before it (`IPv6:` is matched with its prefix).
        if candidate.before.0 == UInt8(ascii: ":"), let c = candidate.before.1, isHex(c) || c == UInt8(ascii: ":") { return false }
        let bytes = candidate.secretBytes
        guard bytes.count >= 4 else { return false }
        var groups = 0
        var doubleColon = false
        var index = 0
        var sawHexLetter = false
        var colons = 0
        if bytes[0] == 58, bytes[1] == 58 { doubleColon = true; index = 2; colons = 2 }
        while index < bytes.count {
            var length = 0
            while index < bytes.count, isHex(bytes[index]) {
                if !isDigit(bytes[index]) { sawHexLetter = true }
                length += 1
                index += 1
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "."), length > 0 {
                // Embedded IPv4 in the last 32 bits.
                let start = index - length
                guard ipv4(CandidateView(bytes: UnsafeRawBufferPointer(rebasing: bytes[start...]))) else { return false }
                groups += 2
                index = bytes.count
                break
            }
            guard length >= 1, length <= 4 else { return false }
            groups += 1
            if index == bytes.count { break }
            guard bytes[index] == UInt8(ascii: ":") else { return false }
            colons += 1
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: ":") {
                guard !doubleColon else { return false }
                doubleColon = true
                colons += 1
                index += 1
                if index == bytes.count { break }
            } else if index == bytes.count {
                return false
            }
        }
        guard colons >= 2, bytes.contains(where: isDigit) else { return false }
        if doubleColon {
            guard groups <= 7, groups >= 2 else { return false }
        } else {
            guard groups == 8 else { return false }
        }
        if !doubleColon && !sawHexLetter {
            // Eight all-decimal groups are far more often a number list than an address.
            return groups == 8 && bytes.contains(where: { $0 == 48 })
        }
        return true
    }

    // MARK: Phone numbers

    /// 7–15 digits; an international number starts with `+`; a national one has 10 digits in the
    /// 3-3-4 layout with separators; not one repeated digit; not glued to letters or digits.
    static func phone(_ candidate: CandidateView) -> Bool {
        if let a = candidate.after.0, isAlnum(a) || a == UInt8(ascii: "-") && candidate.after.1.map(isDigit) == true { return false }
        if let b = candidate.before.0, isAlnum(b) || b == UInt8(ascii: "+") { return false }
        if let b = candidate.before.0, b == UInt8(ascii: "-") || b == UInt8(ascii: "."), candidate.before.1.map(isDigit) == true { return false }
        let bytes = candidate.secretBytes
        var digits = 0
        var seen: UInt16 = 0
        for byte in bytes where isDigit(byte) {
            digits += 1
            seen |= 1 << UInt16(byte - 48)
        }
        guard seen.nonzeroBitCount > 2 else { return false }
        if bytes.first == UInt8(ascii: "+") {
            return (8...15).contains(digits)
        }
        // National numbers start with a trunk 0, possibly inside a parenthesised area code.
        if bytes.first == UInt8(ascii: "0") || bytes.starts(with: "(0".utf8) {
            // Not groups of a longer run of digit groups (an IBAN, a card, an account number).
            if candidate.before.0 == UInt8(ascii: " "), candidate.before.1.map(isDigit) == true { return false }
            if candidate.after.0 == UInt8(ascii: " "), candidate.after.1.map(isDigit) == true { return false }
            return (9...12).contains(digits)
        }
        return digits == 10 || digits == 11 && bytes.first == UInt8(ascii: "1")
    }

    // MARK: base64 values

    /// Standard base64 with correct padding that decodes, at least `min_length` characters
    /// (default 4). With `text_below: N`, a value shorter than N characters must decode to text
    /// (UTF-8 without control characters other than tab, CR and LF): a short secret is a password
    /// or a name, while `6379` or `postgres` decode to noise.
    static func base64(_ bytes: UnsafeRawBufferPointer, parameters: [String: Double]) -> Bool {
        base64(bytes, Base64Parameters(parameters))
    }

    /// The hot path's form. Decodes into a buffer on the stack only when the text test needs the
    /// bytes (values under `text_below`); otherwise checking the alphabet and padding is enough.
    static func base64(_ bytes: UnsafeRawBufferPointer, _ parameters: Base64Parameters) -> Bool {
        guard bytes.count >= parameters.minLength, bytes.count % 4 == 0 else { return false }
        guard bytes.count < parameters.textBelow else { return base64Decode(bytes, into: nil) != nil }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes.count / 4 * 3) { decoded in
            guard let count = base64Decode(bytes, into: decoded) else { return false }
            let text = UnsafeBufferPointer(rebasing: decoded[0..<count])
            guard text.allSatisfy({ $0 >= 32 && $0 != 127 || $0 == 9 || $0 == 10 || $0 == 13 }) else { return false }
            // Valid UTF-8 (no overlong forms, surrogates or truncated sequences).
            var parser = Unicode.UTF8.ForwardParser()
            var iterator = text.makeIterator()
            while true {
                switch parser.parseScalar(from: &iterator) {
                case .valid: continue
                case .emptyInput: return true
                case .error: return false
                }
            }
        }
    }

    /// Standard base64 (`+`, `/`, `=` padding; the length a multiple of 4, at most two `=` and only
    /// at the end), decoded into `out` when given: the decoded length, or nil. Bits of the last
    /// character that the padding leaves unused are ignored.
    static func base64Decode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>?) -> Int? {
        guard bytes.count % 4 == 0 else { return nil }
        var padding = 0
        if bytes.count >= 4, bytes[bytes.count - 1] == UInt8(ascii: "=") {
            padding = bytes[bytes.count - 2] == UInt8(ascii: "=") ? 2 : 1
        }
        let characters = bytes.count - padding
        var accumulator: UInt32 = 0
        var bits = 0
        var written = 0
        for index in 0..<characters {
            let byte = bytes[index]
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - 65)
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - 97 + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - 48 + 52)
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            default: return nil
            }
            accumulator = (accumulator << 6) | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                if let out { out[written] = UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)) }
                written += 1
            }
        }
        return written
    }

    // MARK: Dates

    /// A calendar date in a plausible range for a date of birth (1900–2099), as `YYYY-MM-DD`,
    /// `DD.MM.YYYY`, `MM/DD/YYYY` or `DD/MM/YYYY`.
    static func date(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var numbers = (0, 0, 0)
        var count = 0
        var current = -1
        func push(_ number: Int) {
            switch count {
            case 0: numbers.0 = number
            case 1: numbers.1 = number
            case 2: numbers.2 = number
            default: break
            }
            count += 1
        }
        for byte in bytes {
            if isDigit(byte) {
                // Saturated: a longer number is no date part, and the value must not overflow.
                current = min((current < 0 ? 0 : current * 10) + Int(byte - 48), 1_000_000)
            } else if current >= 0 {
                push(current)
                current = -1
            }
        }
        if current >= 0 { push(current) }
        guard count == 3 else { return false }
        let (year, a, b): (Int, Int, Int)
        if numbers.0 > 31 { (year, a, b) = numbers } else { (year, a, b) = (numbers.2, numbers.0, numbers.1) }
        guard (1900...2099).contains(year) else { return false }
        let okMonthDay = (1...12).contains(a) && (1...31).contains(b)
        let okDayMonth = (1...31).contains(a) && (1...12).contains(b)
        return okMonthDay || okDayMonth
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index -> UInt32 in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
