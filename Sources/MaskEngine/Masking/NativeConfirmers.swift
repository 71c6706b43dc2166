import CMaskKernel

/// The software confirmers of built-in detectors (Sources/CMaskKernel/confirmers.c): the same
/// matches as a Hyperscan scan with start-of-match of their patterns, for a fraction of its cost
/// per window. Numeric detectors (cards, SSNs, phones) share one call per digit run; e-mail,
/// IPv4, IBAN and JWT candidates are confirmed one window at a time, like the generic route.
///
/// A confirmer is bound to the exact text of a pattern. A corpus that changes a pattern (or adds
/// a digit-run detector with its own) gets Hyperscan for every digit-run window: the software
/// route is taken only when it is known to give the same answer.
enum NativeConfirmers {
    /// The built-in expressions, as written in corpora/, and their `MK_PAT_*` ids.
    static let patterns: [String: Int] = [
        #"\b(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|6(?:011|5\d{2}|4[4-9]\d))(?:\d{12}|(?: \d{4}){3}|(?:-\d{4}){3})\b"#: Int(MK_PAT_CARD_IIN),
        #"\b4\d{12}(?:\d{6})?\b"#: Int(MK_PAT_CARD_VISA),
        #"\b3[47]\d{2}(?:\d{11}| \d{6} \d{5}|-\d{6}-\d{5})\b"#: Int(MK_PAT_CARD_AMEX),
        #"\b\d{3}-\d{2}-\d{4}\b"#: Int(MK_PAT_SSN_DASHED),
        #"\b\d{9}\b"#: Int(MK_PAT_SSN_NINE),
        #"\b\d{3} \d{2} \d{4}\b"#: Int(MK_PAT_SSN_SPACED),
        #"\+[1-9]\d{0,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}"#: Int(MK_PAT_PHONE_E164),
        #"(?:\b1[ .-])?(?:\(\d{3}\) ?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b"#: Int(MK_PAT_PHONE_US),
        #"\b0[1-9](?: \d{2}){4}\b"#: Int(MK_PAT_PHONE_PAIRS),
        #"\b0[1-9](?:\.\d{2}){4}\b"#: Int(MK_PAT_PHONE_DOTS),
        #"\b0[1-9]\d{1,3}[ /]\d{6,8}\b"#: Int(MK_PAT_PHONE_AREA_SLASH),
        #"\b0[1-9]\d{0,4}[ -]\d{3,4}[ -]\d{3,4}\b"#: Int(MK_PAT_PHONE_THREE_GROUPS),
        #"\b0[1-9]\d{0,4}[ /-]\d{5,8}\b"#: Int(MK_PAT_PHONE_TWO_GROUPS),
        #"\(0[1-9]\d{1,4}\) ?\d{3,4}[ -]?\d{3,4}\b"#: Int(MK_PAT_PHONE_PAREN_AREA),
        #"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"#: Int(MK_PAT_EMAIL_AT),
        #"[A-Za-z0-9._%+-]+%(?:25)?40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"#: Int(MK_PAT_EMAIL_PERCENT),
        #"[A-Za-z0-9._%+-]+&#(?:64|x40);[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"#: Int(MK_PAT_EMAIL_ENTITY),
        #"\b(?:\d{1,3}\.){3}\d{1,3}\b"#: Int(MK_PAT_IPV4),
        #"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"#: Int(MK_PAT_IBAN_COMPACT),
        #"\b[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?\b"#: Int(MK_PAT_IBAN_SPACED),
        #"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2}"#: Int(MK_PAT_JWT),
        #"[A-Za-z0-9/+]{40}"#: Int(MK_PAT_AWS_SECRET),
        #"\b[sr]k_live_[A-Za-z0-9]{20,}"#: Int(MK_PAT_STRIPE),
        #"\bgh[pousr]_[A-Za-z0-9]{36}\b"#: Int(MK_PAT_GITHUB_CLASSIC),
        #"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b"#: Int(MK_PAT_GITHUB_FINE),
        #"\bxox[abposre]-\d{6,15}-[A-Za-z0-9-]{10,}"#: Int(MK_PAT_SLACK_TOKEN),
        #"\bxapp-\d-[A-Z0-9]{6,15}-\d{6,15}-[a-f0-9]{32,80}"#: Int(MK_PAT_SLACK_APP),
        #"https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}"#: Int(MK_PAT_SLACK_WEBHOOK),
        #"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b"#: Int(MK_PAT_AWS_KEY_ID),
        #"(?:password|passwd|secret|secret_?key|client_?secret|api_?key|private_?key|(?:\b|_)(?:pwd|pass|access_?token|auth_?token|refresh_?token|token))\\?["']?[ \t]*[:=][ \t]*\\?["']?[^\s"',;]{6,}(?:[ \t"',;]|\r?$)"#: Int(MK_PAT_SECRET_ASSIGN),
        #"(?:password|passwd|passphrase|secret)["']?[ \t]*[:=][ \t]*"[^"\r\n]*[ ,;][^"\r\n]*""#: Int(MK_PAT_SECRET_ASSIGN_DQUOTED),
        #"(?:password|passwd|passphrase|secret)["']?[ \t]*[:=][ \t]*'[^'\r\n]*[ ,;][^'\r\n]*'"#: Int(MK_PAT_SECRET_ASSIGN_SQUOTED),
        #"(?:\b|_)(?:password|passwd|pwd|secret|secret_key|client_secret|api_?key|access_token|auth_token|private_key|token)["']?\s{0,3}[:=]\s{0,3}["']?[^\s"',;]{64}"#: Int(MK_PAT_SECRET_ASSIGN_LONG),
        #"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b"#: Int(MK_PAT_IPV6_FULL),
        #"\b(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}\b"#: Int(MK_PAT_IPV6_COMPRESSED),
        #"\b(?:[0-9A-Fa-f]{1,4}:){6}(?:\d{1,3}\.){3}\d{1,3}\b"#: Int(MK_PAT_IPV6_V4TAIL),
        #"\b[Ii][Pp][Vv]6:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b"#: Int(MK_PAT_IPV6_PREFIX_FULL),
        #"\b[Ii][Pp][Vv]6:(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}\b"#: Int(MK_PAT_IPV6_PREFIX_COMPRESSED),
        #"\b[Ii][Pp][Vv]6:(?:[0-9A-Fa-f]{1,4}:){6}(?:\d{1,3}\.){3}\d{1,3}\b"#: Int(MK_PAT_IPV6_PREFIX_V4TAIL),
        #"::(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}\b"#: Int(MK_PAT_IPV6_LEADING),
        #"::[Ff]{4}:(?:\d{1,3}\.){3}\d{1,3}\b"#: Int(MK_PAT_IPV6_MAPPED),
        #"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@"'<>]+:[^\s@"'<>]+@"#: Int(MK_PAT_URL_CREDENTIALS),
        #"(?:[?&;]|\b)(?:password|passwd|pwd)=[^&;\s"'<>]+"#: Int(MK_PAT_CONN_PASSWORD),
        #"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----"#: Int(MK_PAT_PEM_PRIVATE_KEY),
        #"\b(?:19|20)\d{2}-\d{2}-\d{2}\b"#: Int(MK_PAT_DOB_ISO),
        #"\b\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d{2}\b"#: Int(MK_PAT_DOB_NUMERIC),
        #"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}\.? \d{1,2}, (?:19|20)\d{2}\b"#: Int(MK_PAT_DOB_MONTH_FIRST),
        #"\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}\.? (?:19|20)\d{2}\b"#: Int(MK_PAT_DOB_DAY_FIRST),
        #"^[ ]{2,12}[A-Za-z0-9._-]+: (?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?[ ]*\r?$"#: Int(MK_PAT_K8S_SECRET_VALUE),
        #"^[ ]{2,12}[A-Za-z0-9._-]+: [A-Za-z0-9+/]{129}"#: Int(MK_PAT_K8S_SECRET_LONG),
        #"^[A-Za-z0-9._*-]+:(?:\d{1,5}|\*):[^:\s]+:[^:\s]+:\S+$"#: Int(MK_PAT_PGPASS),
        #"\b(?:login|account)[ \t\r\n]+\S+[ \t\r\n]+password[ \t]+\S+"#: Int(MK_PAT_NETRC_LOGIN),
        #"\bmachine[ \t]+\S+[ \t\r\n]+password[ \t]+\S+"#: Int(MK_PAT_NETRC_MACHINE),
        #",[^,\r\n]+,(?:AKIA|ASIA)[A-Z0-9]{16}\b"#: Int(MK_PAT_AWS_CSV_KEY),
        #",[^,\r\n]+,https://\d{12}\.signin\.aws\.amazon\.com"#: Int(MK_PAT_AWS_CSV_CONSOLE),
        #"\bmysql(?:dump|admin|import|check|sh)?\b[^\r\n]*[ \t]-p["']?[^\s"']{4,}"#: Int(MK_PAT_MYSQL_FLAG),
        #"(?:^|[ \t"'])--?(?:password|passwd|pass|requirepass|masterauth|db-password|admin-password)(?:=|[ \t]+)["']?[^\s"'<>]{6,}"#: Int(MK_PAT_PASSWORD_FLAG),
        #"<(?:[A-Za-z][A-Za-z0-9_.-]{0,31}:)?[A-Za-z0-9_]{0,32}(?:password|passwd|passphrase|pass|pwd|secret|secretkey|apikey|api_key|sessiontoken|accesstoken|authtoken)(?:[ \t][^<>]{0,300})?>[^<>\r\n]{1,256}</"#: Int(MK_PAT_XML_PASSWORD),
        #"<input\b[^<>]{0,200}\btype=["']?password\b[^<>]{0,200}\bvalue=(?:"[^"<>]{1,128}|'[^'<>]{1,128}|[^\s"'<>]{1,128})"#: Int(MK_PAT_HTML_INPUT),
        #"<input\b[^<>]*\bvalue="[^"<>]+"[^<>]*\btype=["']?password\b"#: Int(MK_PAT_HTML_INPUT_VALUE_FIRST),
        #"\b(?:key|name)=["'][^"'<>]*(?:password|passwd|pwd|secret|apikey|api_key|api-key)[^"'<>]*["'][ \t]+value=(?:"[^"<>\r\n]+|'[^'<>\r\n]+)"#: Int(MK_PAT_KEYED_VALUE),
        #"\b(?:key|name)=["'][^"'<>]*(?:password|passwd|pwd|secret)[^"'<>]*["'][^<>]*>[^<>\r\n]+</"#: Int(MK_PAT_KEYED_ELEMENT),
    ]

    /// Patterns confirmed caseless (the key names of secret assignments): only a caseless detector
    /// may use them.
    static let caselessOnly: Set<Int> = [
        Int(MK_PAT_SECRET_ASSIGN), Int(MK_PAT_SECRET_ASSIGN_DQUOTED), Int(MK_PAT_SECRET_ASSIGN_SQUOTED), Int(MK_PAT_SECRET_ASSIGN_LONG),
        Int(MK_PAT_CONN_PASSWORD), Int(MK_PAT_DOB_MONTH_FIRST), Int(MK_PAT_DOB_DAY_FIRST), Int(MK_PAT_XML_PASSWORD), Int(MK_PAT_HTML_INPUT),
        Int(MK_PAT_HTML_INPUT_VALUE_FIRST), Int(MK_PAT_KEYED_VALUE), Int(MK_PAT_KEYED_ELEMENT),
    ]

    /// Patterns whose letters are case-sensitive: a caseless detector with one of them is not
    /// confirmed in software (the numeric ones have no letters, so case does not matter).
    static let caseSensitive: Set<Int> = [
        Int(MK_PAT_EMAIL_ENTITY), Int(MK_PAT_IBAN_COMPACT), Int(MK_PAT_IBAN_SPACED), Int(MK_PAT_JWT), Int(MK_PAT_STRIPE),
        Int(MK_PAT_GITHUB_CLASSIC), Int(MK_PAT_GITHUB_FINE), Int(MK_PAT_SLACK_TOKEN), Int(MK_PAT_SLACK_APP), Int(MK_PAT_SLACK_WEBHOOK),
        Int(MK_PAT_AWS_KEY_ID), Int(MK_PAT_PEM_PRIVATE_KEY), Int(MK_PAT_K8S_SECRET_VALUE), Int(MK_PAT_K8S_SECRET_LONG),
        Int(MK_PAT_PGPASS), Int(MK_PAT_NETRC_LOGIN), Int(MK_PAT_NETRC_MACHINE), Int(MK_PAT_AWS_CSV_KEY), Int(MK_PAT_AWS_CSV_CONSOLE),
        Int(MK_PAT_MYSQL_FLAG), Int(MK_PAT_PASSWORD_FLAG),
    ]

    static let patternCount = Int(MK_PAT_COUNT)

    /// The e-mail patterns, whose match ends a byte loop finds (`mk_email_ends`) instead of the
    /// prefilter: a detector with exactly these three patterns (case-sensitive) leaves the
    /// Hyperscan databases.
    static let emailPatterns: Set<String> = Set(patterns.filter {
        [Int(MK_PAT_EMAIL_AT), Int(MK_PAT_EMAIL_PERCENT), Int(MK_PAT_EMAIL_ENTITY)].contains($0.value)
    }.keys)

    /// Digits in the shortest IPv4 address.
    static let ipv4MinDigits = 4

    /// Whether the detector is the built-in IPv4 one: its matches are digits and dots with a
    /// digit first, so the digit-run finder finds them (with runs of 4 digits or more) and it
    /// leaves the prefilter.
    static func runsInDigitRuns(_ detector: Detector) -> Bool {
        detector.triggers.isEmpty && detector.finder == nil
            && detector.patterns == [#"\b(?:\d{1,3}\.){3}\d{1,3}\b"#]
    }

    /// The built-in detectors whose candidates come from class runs (and which leave the
    /// prefilter): every pattern of the detector, and nothing else, is one of these.
    static func classRunKind(_ detector: Detector) -> ClassRunFinder.Kind? {
        guard detector.triggers.isEmpty, detector.finder == nil, !detector.patterns.isEmpty else { return nil }
        let ids = Set(detector.patterns.compactMap { patterns[$0] })
        guard ids.count == detector.patterns.count else { return nil }
        let ipv6: Set<Int> = [Int(MK_PAT_IPV6_FULL), Int(MK_PAT_IPV6_COMPRESSED), Int(MK_PAT_IPV6_V4TAIL), Int(MK_PAT_IPV6_PREFIX_FULL),
                              Int(MK_PAT_IPV6_PREFIX_COMPRESSED), Int(MK_PAT_IPV6_PREFIX_V4TAIL), Int(MK_PAT_IPV6_LEADING),
                              Int(MK_PAT_IPV6_MAPPED)]
        if ids.isSubset(of: ipv6) { return .ipv6 }
        if !detector.caseless, ids.isSubset(of: [Int(MK_PAT_IBAN_COMPACT), Int(MK_PAT_IBAN_SPACED)]) { return .iban }
        return nil
    }

    /// Bytes before a class-run window that a match may start in: `IPv6:`'s `IPv` and the byte
    /// before it (for `\b`); the IBAN's letters are run bytes.
    static func classRunMarginLeft(_ kind: ClassRunFinder.Kind) -> Int {
        switch kind {
        case .ipv6: 5
        case .iban: 2
        }
    }

    /// Whether the byte loop finds this detector's match ends.
    static func findsEmailEnds(_ detector: Detector) -> Bool {
        !detector.caseless && detector.triggers.isEmpty && detector.finder == nil && detector.patterns.count == 3
            && Set(detector.patterns) == emailPatterns
    }
    static let maxWindow = Int(MK_CONFIRM_MAX_WINDOW)
    static let maxSlots = Int(MK_CONFIRM_MAX_SLOTS)

    /// The slot (index among `detectors`) of each built-in pattern, or nil when one of the
    /// detectors has a pattern the confirmers do not know (or two detectors share one).
    static func slots(for detectors: [Detector]) -> [UInt8]? {
        guard !detectors.isEmpty, detectors.count <= maxSlots else { return nil }
        var slots = [UInt8](repeating: 0xFF, count: patternCount)
        for (slot, detector) in detectors.enumerated() {
            for pattern in detector.patterns {
                guard let id = patterns[pattern], slots[id] == 0xFF else { return nil }
                if detector.caseless, caseSensitive.contains(id) { return nil }
                if !detector.caseless, caselessOnly.contains(id) { return nil }
                slots[id] = UInt8(slot)
            }
        }
        return slots
    }

    /// Confirms one window in software: appends `(start, end)` relative to the window to
    /// `collector.spans`, or `(slot, start, end)` to `collector.idSpans` when `withSlots`, in slot
    /// then end order, one (leftmost) start per end. Returns false when the window is too long
    /// (the caller then scans it with Hyperscan).
    static func confirm(_ window: UnsafeRawBufferPointer, slots: [UInt8], slotCount: Int, withSlots: Bool,
                        into collector: EventCollector) -> Bool {
        guard window.count <= maxWindow, let base = window.baseAddress else { return false }
        let context = Unmanaged.passUnretained(collector).toOpaque()
        return slots.withUnsafeBufferPointer { slotOf in
            mk_confirm(base.assumingMemoryBound(to: UInt8.self), window.count, slotOf.baseAddress, UInt32(slotCount),
                       withSlots ? EventCollector.onNativeIDSpan : EventCollector.onNativeSpan, context) == 1
        }
    }
}

extension EventCollector {
    /// Files a match end found in software as a prefilter event of `nativeEventID`.
    static let onNativeEnd: mk_end = { context, end in
        let collector = Unmanaged<EventCollector>.fromOpaque(context!).takeUnretainedValue()
        guard collector.events.count < collector.limit else {
            collector.overflow = true
            return
        }
        collector.events.append(collector.nativeEventID | end)
    }

    static let onNativeSpan: mk_found = { context, _, start, end in
        Unmanaged<EventCollector>.fromOpaque(context!).takeUnretainedValue().spans.append((Int(start), Int(end)))
    }

    static let onNativeIDSpan: mk_found = { context, slot, start, end in
        Unmanaged<EventCollector>.fromOpaque(context!).takeUnretainedValue().idSpans.append((Int(slot), Int(start), Int(end)))
    }
}
