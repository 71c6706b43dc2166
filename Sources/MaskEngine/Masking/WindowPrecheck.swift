import CMaskKernel

/// Literals that every match of a built-in triggered pattern contains, so that a trigger window
/// without them is not scanned at all.
///
/// A triggered detector confirms a window of about twice its `max_width` around each trigger
/// with one Hyperscan scan with start-of-match (~1–3 µs). The password family shares the trigger
/// `password`: in text that says "password" often, most windows hold none of the structure the
/// patterns need (`<input`, `</`, `key="`, `-pass`). A window is scanned only when, for one of the
/// detector's patterns, each group of literals has a member in the window. Literals are compared
/// without case, which can only let more windows through.
///
/// Like the software confirmers, the table is bound to the exact text of each pattern: a corpus
/// that changes a pattern gets every window scanned. The reference engine (software confirmers
/// off) scans every window, and the differential tests compare the two.
enum WindowPrecheck {
    /// Pattern text → groups; each group lists literals of which every match holds at least one.
    static let needles: [String: [[String]]] = [
        #"\b(?:login|account)[ \t\r\n]+\S+[ \t\r\n]+password[ \t]+\S+"#: [["login", "account"]],
        #"\bmachine[ \t]+\S+[ \t\r\n]+password[ \t]+\S+"#: [["machine"]],
        #"<(?:[A-Za-z][A-Za-z0-9_.-]{0,31}:)?[A-Za-z0-9_]{0,32}(?:password|passwd|passphrase|pass|pwd|secret|secretkey|apikey|api_key|sessiontoken|accesstoken|authtoken)(?:[ \t][^<>]{0,300})?>[^<>\r\n]{1,256}</"#:
            [["</"]],
        #"<input\b[^<>]{0,200}\btype=["']?password\b[^<>]{0,200}\bvalue=(?:"[^"<>]{1,128}|'[^'<>]{1,128}|[^\s"'<>]{1,128})"#:
            [["<input"], ["type="], ["value="]],
        #"<input\b[^<>]*\bvalue="[^"<>]+"[^<>]*\btype=["']?password\b"#: [["<input"], ["value=\""], ["type="]],
        #",[^,\r\n]+,(?:AKIA|ASIA)[A-Z0-9]{16}\b"#: [[",AKIA", ",ASIA"]],
        #",[^,\r\n]+,https://\d{12}\.signin\.aws\.amazon\.com"#: [[",https://"]],
        #"\b(?:key|name)=["'][^"'<>]*(?:password|passwd|pwd|secret|apikey|api_key|api-key)[^"'<>]*["'][ \t]+value=(?:"[^"<>\r\n]+|'[^'<>\r\n]+)"#:
            [["key=\"", "key='", "name=\"", "name='"], ["value=\"", "value='"]],
        #"\b(?:key|name)=["'][^"'<>]*(?:password|passwd|pwd|secret)[^"'<>]*["'][^<>]*>[^<>\r\n]+</"#:
            [["key=\"", "key='", "name=\"", "name='"], ["</"]],
        #"\bmysql(?:dump|admin|import|check|sh)?\b[^\r\n]*[ \t]-p["']?[^\s"']{4,}"#: [[" -p", "\t-p"]],
        // `-password`, `-passwd`, `-db-password` and `-admin-password` all hold `-pass`.
        #"(?:^|[ \t"'])--?(?:password|passwd|pass|requirepass|masterauth|db-password|admin-password)(?:=|[ \t]+)["']?[^\s"'<>]{6,}"#:
            [["-pass", "-requirepass", "-masterauth"]],
    ]

    /// Per pattern of the detector, its groups as bytes; nil when a pattern has no entry (every
    /// window is scanned).
    static func needles(for detector: Detector) -> [[[[UInt8]]]]? {
        guard !detector.patterns.isEmpty else { return nil }
        var result: [[[[UInt8]]]] = []
        for pattern in detector.patterns {
            guard let groups = needles[pattern] else { return nil }
            result.append(groups.map { $0.map { Array($0.utf8) } })
        }
        return result
    }

    /// Whether the window may hold a match: some pattern has a literal of each group in it.
    static func mayMatch(_ window: UnsafeRawBufferPointer, needles: [[[[UInt8]]]]) -> Bool {
        guard let base = window.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return false }
        patterns: for groups in needles {
            for group in groups {
                var found = false
                for needle in group where needle.withUnsafeBufferPointer({
                    mk_contains_caseless(base, window.count, $0.baseAddress, $0.count) == 1
                }) {
                    found = true
                    break
                }
                if !found { continue patterns }
            }
            return true
        }
        return false
    }
}
