import CHyperscan
import Crypto

/// A detector ready to run: its corpus definition plus what the engine derived from it.
///
/// A class, so that the hot path's `engine.detectors[i]` costs one reference count, not one per
/// field.
final class CompiledDetector: Sendable {
    let index: Int
    let definition: Detector
    let style: MaskStyle
    /// The widest match considered; a longer match is masked on its last `maxWidth` bytes.
    let maxWidth: Int
    let contextBefore: Int
    let contextAfter: Int
    /// Context rules, in the order of their event slots.
    let context: [ContextRule]
    /// Every context rule looks only before the match and has no breakers, so a candidate with
    /// no context word in reach can be dropped before its start is searched.
    let contextPrecheck: Bool
    let extendClass: ByteSet?
    let extendUntilMax: Int?
    let redaction: [UInt8]
    /// The `span` literals, parsed once.
    let span: CompiledSpan?
    /// The validator, resolved once.
    let validator: CompiledValidator?
    /// When every pattern is a built-in one with a software confirmer: slot 0 for each of its
    /// `MK_PAT_*` ids, 0xFF for the others. Its windows are then confirmed without Hyperscan.
    let nativeSlots: [UInt8]?
    /// The prefilter reports trigger ends, not match ends: matches are searched in a window of
    /// `max_width` on both sides of each trigger.
    let triggered: Bool
    /// How far after a trigger a match may end: `max_width + trigger_before`.
    let triggerReach: Int
    /// Triggers are searched only with a context word in reach (every rule looks only before
    /// the match, so its words are scanned by the time the trigger's window is).
    let triggerContextPrecheck: Bool
    /// Literals a trigger window must hold for a match to be possible (`WindowPrecheck`); nil
    /// scans every window.
    let windowNeedles: [[[[UInt8]]]]?
    /// A literal trigger searched in software, only where a context word is in reach, instead of
    /// in the prefilter (`MaskingEngine.gatedTrigger`): the Kubernetes `': '`.
    let gatedTrigger: [UInt8]?

    init(index: Int, definition: Detector, style: MaskStyle, maxWidth: Int, contextBefore: Int, contextAfter: Int,
         context: [ContextRule], contextPrecheck: Bool, extendClass: ByteSet?, extendUntilMax: Int?, redaction: [UInt8],
         span: CompiledSpan?, nativeSlots: [UInt8]?, triggered: Bool, triggerReach: Int, windowNeedles: [[[[UInt8]]]]? = nil,
         gatedTrigger: [UInt8]? = nil) {
        self.index = index
        self.definition = definition
        self.style = style
        self.maxWidth = maxWidth
        self.contextBefore = contextBefore
        self.contextAfter = contextAfter
        self.context = context
        self.contextPrecheck = contextPrecheck
        self.extendClass = extendClass
        self.extendUntilMax = extendUntilMax
        self.redaction = redaction
        self.span = span
        self.validator = definition.validator.map(CompiledValidator.init)
        self.nativeSlots = nativeSlots
        self.triggered = triggered
        self.triggerReach = triggerReach
        self.triggerContextPrecheck = triggered && !context.isEmpty && context.allSatisfy { $0.after == 0 }
        self.windowNeedles = windowNeedles
        self.gatedTrigger = gatedTrigger
    }
}

/// Kinds of events a prefilter database reports, in the high bits of the expression id.
enum EventKind: UInt32 {
    case match = 0
    case context = 1
    case terminator = 2
    case breaker = 3

    /// Ids carry the kind (4 bits), a context-rule slot (4 bits) and the detector index (16 bits).
    static func id(_ kind: EventKind, detector: Int, slot: Int = 0) -> UInt32 {
        kind.rawValue << 20 | UInt32(slot) << 16 | UInt32(detector)
    }
}

/// All detectors of one masking profile, compiled. Immutable, shared by every masker made from it.
///
/// Matching is two-stage. A *prefilter* database holds every pattern without start-of-match
/// tracking (fast in stream mode) and reports where candidates end. For those ends only, a
/// per-detector block database compiled with `HS_FLAG_SOM_LEFTMOST` finds the leftmost start in
/// a window of at most `max_width` bytes before the end. Validators and context words then
/// decide, and overlapping matches resolve leftmost-longest.
public final class MaskingEngine: Sendable {
    public let profile: MaskingProfile
    let detectors: [CompiledDetector]
    let streamDatabase: HyperscanDatabase
    let blockDatabase: HyperscanDatabase
    let confirmDatabases: [HyperscanDatabase]
    /// Detectors whose candidates come from the digit-run finder, and one block database with
    /// their patterns (expression id = index into `digitRunDetectors`).
    let digitRunDetectors: [Int]
    let digitRunDatabase: HyperscanDatabase?
    let digitRunWidth: Int
    /// When IPv4 addresses are searched in digit runs: runs with three dots and this many digits
    /// are searched too (other runs need `digitRunMinDigits`).
    let digitRunDottedMinDigits: Int?
    /// When every pattern of the digit-run detectors is a built-in one the software confirmers
    /// know: the detector slot of each `MK_PAT_*` id (0xFF when it does not run). Windows are then
    /// confirmed without a Hyperscan scan; otherwise `digitRunDatabase` does it.
    let nativeDigitSlots: [UInt8]?
    /// The fast paths that skip Hyperscan confirm scans are on (software confirmers, context
    /// prechecks of triggers). Off, the engine is the tests' reference: every candidate is
    /// confirmed by a Hyperscan scan.
    let shortcuts: Bool
    /// The detector whose match ends `mk_email_ends` finds instead of the prefilter.
    let emailEndDetector: Int?
    /// Detectors whose candidates come from class runs (IPv6, IBAN), outside the prefilter.
    let classRunFamilies: [ClassRunFamily]

    struct ClassRunFamily: Sendable {
        let detector: Int
        let kind: ClassRunFinder.Kind
        /// The window is widened by this many bytes on the left (2 on the right).
        let marginLeft: Int
    }

    /// The class-run kind of a detector the engine searches in class runs, if it is one.
    static func classRunKind(_ detector: Detector) -> ClassRunFinder.Kind? {
        guard NativeConfirmers.slots(for: [detector]) != nil else { return nil }
        return NativeConfirmers.classRunKind(detector)
    }
    /// The bytes of a detector's trigger when the engine searches it in software, only where a
    /// context word is in reach, and leaves it out of the prefilter: the detector has one trigger,
    /// a plain literal (no letters when caseless), and context rules that all look only before
    /// the match (so a trigger far from every context word is skipped anyway). A frequent short
    /// literal such as the Kubernetes `': '` (about ten per KB of JSON or logs) otherwise costs a
    /// prefilter report each.
    static func gatedTrigger(_ detector: Detector) -> [UInt8]? {
        guard detector.triggers.count == 1, !detector.context.isEmpty, detector.context.allSatisfy({ $0.after == 0 }),
              let trigger = detector.triggers.first, !trigger.isEmpty, trigger.utf8.count <= 16 else { return nil }
        let special = Set("\\^$.|?*+()[]{}".utf8)
        for byte in trigger.utf8 {
            if special.contains(byte) || byte < 0x20 || byte >= 0x7F { return nil }
            if detector.caseless, Validators.isAlnum(byte), !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { return nil }
        }
        return Array(trigger.utf8)
    }

    /// Runs longer than this are searched in overlapping windows.
    static let digitRunMaxWindow = 256
    /// Fewer digits than this cannot hold a card, an SSN or a phone number.
    static let digitRunMinDigits = 7
    let scratch: ScratchPool
    /// Working memory lent to stream maskers one call at a time.
    let workPool = WorkPool()
    /// Bytes a stream holds back so that no match can still grow into released output.
    public let holdback: Int
    let maxContextBefore: Int
    /// The widest match of any detector.
    let maxMatchWidth: Int
    /// The fewest bytes any detector's pattern matches (Hyperscan's minimum width).
    public let shortestMatch: Int
    let hashKey: SymmetricKey

    /// The ids of the detectors this engine runs, in priority order.
    public var detectorIDs: [String] { detectors.map(\.definition.id) }

    /// - Parameters:
    ///   - detectors: every detector known (from the corpora); the profile selects among them.
    ///   - profile: which detectors run and with what style.
    ///   - hashKey: the key of the `hash` style. Without one, a random per-process key is used,
    ///     so tokens are stable only within one process.
    ///   - cache: where compiled databases are kept between runs (nil: always compile).
    ///   - softwareConfirmers: confirm the built-in numeric patterns in software and skip triggers
    ///     with no context word in reach (the default); false confirms every candidate with
    ///     Hyperscan, as the tests' reference engine does.
    public init(detectors all: [Detector], profile: MaskingProfile = MaskingProfile(name: "default"),
                hashKey: [UInt8]? = nil, cache: HyperscanDatabaseCache? = HyperscanDatabaseCache.default,
                softwareConfirmers: Bool = true) throws {
        try HS.checkPlatform()
        self.profile = profile
        self.hashKey = hashKey.map { SymmetricKey(data: $0) } ?? SymmetricKey(size: .bits256)
        let selected = all.filter(profile.selects)
        guard !selected.isEmpty else {
            throw HyperscanError(code: .compileFailed, reason: "profile '\(profile.name)' selects no detector")
        }
        let baseFlags = HS.multiline
        var prefilter: [HyperscanExpression] = []
        var confirm: [HyperscanDatabase] = []
        var compiled: [CompiledDetector] = []
        var shortest = Int.max
        var emailEnds: Int?
        for (index, detector) in selected.enumerated() {
            defer {
                if softwareConfirmers, emailEnds == nil, NativeConfirmers.findsEmailEnds(detector) { emailEnds = index }
            }
            let flags = baseFlags | (detector.caseless ? HS.caseless : 0)
            var widest = 0
            for pattern in detector.patterns {
                let info = try HyperscanDatabase.info(pattern: pattern, flags: flags, owner: detector.id, cache: cache)
                shortest = Swift.min(shortest, info.minWidth)
                if let max = info.maxWidth {
                    widest = Swift.max(widest, Swift.min(max, detector.maxWidth ?? max))
                } else if let declared = detector.maxWidth {
                    widest = Swift.max(widest, declared)
                } else {
                    throw HyperscanError(code: .compileFailed, detector: detector.id,
                                         reason: "the pattern is unbounded: set max_width")
                }
                if detector.triggers.isEmpty && detector.finder == nil
                    && !(softwareConfirmers && emailEnds == nil && NativeConfirmers.findsEmailEnds(detector))
                    && !(softwareConfirmers && NativeConfirmers.runsInDigitRuns(detector))
                    && !(softwareConfirmers && Self.classRunKind(detector) != nil) {
                    prefilter.append(HyperscanExpression(pattern: pattern, flags: flags,
                                                         id: EventKind.id(.match, detector: index), owner: detector.id))
                }
            }
            let gated = softwareConfirmers ? Self.gatedTrigger(detector) : nil
            for trigger in detector.triggers where gated == nil {
                prefilter.append(HyperscanExpression(pattern: trigger, flags: flags,
                                                     id: EventKind.id(.match, detector: index), owner: detector.id))
            }
            let confirmExpressions = detector.patterns.enumerated().map { offset, pattern in
                HyperscanExpression(pattern: pattern, flags: flags | HS.somLeftmost, id: UInt32(offset), owner: detector.id)
            }
            confirm.append(try HyperscanDatabase(expressions: confirmExpressions, mode: HS.modeBlock, cache: cache))
            guard detector.context.count <= 16 else {
                throw HyperscanError(code: .compileFailed, detector: detector.id, reason: "at most 16 context rules")
            }
            for (slot, rule) in detector.context.enumerated() {
                for word in rule.words {
                    prefilter.append(HyperscanExpression(pattern: Self.literalPattern(word), flags: HS.caseless,
                                                         id: EventKind.id(.context, detector: index, slot: slot), owner: detector.id))
                }
                for word in rule.breakers {
                    prefilter.append(HyperscanExpression(pattern: Self.literalPattern(word), flags: HS.caseless,
                                                         id: EventKind.id(.breaker, detector: index, slot: slot), owner: detector.id))
                }
            }
            var extendClass: ByteSet?
            var extendMax: Int?
            switch detector.extend {
            case .byteClass(let set):
                extendClass = set
            case .until(let pattern, let max):
                extendMax = max
                prefilter.append(HyperscanExpression(pattern: pattern, flags: flags,
                                                     id: EventKind.id(.terminator, detector: index), owner: detector.id))
            case nil:
                break
            }
            let style = profile.style(for: detector)
            compiled.append(CompiledDetector(
                index: index, definition: detector, style: style, maxWidth: widest,
                contextBefore: detector.context.map(\.before).max() ?? 0,
                contextAfter: detector.context.map(\.after).max() ?? 0, context: detector.context,
                contextPrecheck: !detector.context.isEmpty && detector.context.allSatisfy { $0.after == 0 && $0.breakers.isEmpty }, extendClass: extendClass, extendUntilMax: extendMax,
                redaction: Array("[\(detector.label)]".utf8), span: detector.span.map(CompiledSpan.init),
                nativeSlots: softwareConfirmers ? NativeConfirmers.slots(for: [detector]) : nil, triggered: !detector.triggers.isEmpty,
                triggerReach: widest + detector.triggerBefore,
                windowNeedles: softwareConfirmers && !detector.triggers.isEmpty ? WindowPrecheck.needles(for: detector) : nil,
                gatedTrigger: gated))
        }
        self.detectors = compiled
        var runDetectors: [Int] = []
        var runExpressions: [HyperscanExpression] = []
        var dottedRuns = false
        for detector in compiled where detector.definition.finder == "digit_run"
            || (softwareConfirmers && NativeConfirmers.runsInDigitRuns(detector.definition)) {
            if detector.definition.finder == nil { dottedRuns = true }
            for pattern in detector.definition.patterns {
                runExpressions.append(HyperscanExpression(
                    pattern: pattern, flags: baseFlags | HS.somLeftmost | (detector.definition.caseless ? HS.caseless : 0),
                    id: UInt32(runDetectors.count), owner: detector.definition.id))
            }
            runDetectors.append(detector.index)
        }
        self.digitRunDetectors = runDetectors
        self.digitRunDatabase = runExpressions.isEmpty ? nil : try HyperscanDatabase(expressions: runExpressions, mode: HS.modeBlock, cache: cache)
        self.digitRunDottedMinDigits = dottedRuns ? NativeConfirmers.ipv4MinDigits : nil
        self.digitRunWidth = runDetectors.map { compiled[$0].maxWidth }.max() ?? 0
        self.shortcuts = softwareConfirmers
        self.emailEndDetector = emailEnds
        self.classRunFamilies = softwareConfirmers ? compiled.compactMap { detector in
            Self.classRunKind(detector.definition).map {
                ClassRunFamily(detector: detector.index, kind: $0, marginLeft: NativeConfirmers.classRunMarginLeft($0))
            }
        } : []
        self.nativeDigitSlots = softwareConfirmers ? NativeConfirmers.slots(for: runDetectors.map { compiled[$0].definition }) : nil
        if prefilter.isEmpty {
            // Every detector uses a finder: the prefilter still needs one expression.
            prefilter.append(HyperscanExpression(pattern: "\\x00\\xff\\x00\\xff", flags: 0, id: EventKind.id(.terminator, detector: 0xFFFF), owner: "none"))
        }
        self.streamDatabase = try HyperscanDatabase(expressions: prefilter, mode: HS.modeStream, cache: cache)
        self.blockDatabase = try HyperscanDatabase(expressions: prefilter, mode: HS.modeBlock, cache: cache)
        self.confirmDatabases = confirm
        self.scratch = try ScratchPool(databases: [streamDatabase, blockDatabase] + confirm + (digitRunDatabase.map { [$0] } ?? []))
        // A triggered detector's matches end up to max_width after the trigger and start up to
        // max_width before it: its window needs twice the width.
        // A digit-run window is reported at most `digitRunMaxWindow` bytes after the run's first digit.
        self.holdback = (compiled.map {
            (runDetectors.contains($0.index) || (softwareConfirmers && Self.classRunKind($0.definition) != nil)
                ? Self.digitRunMaxWindow + 8 : $0.triggered ? $0.maxWidth + $0.triggerReach + 2 : $0.maxWidth)
                + $0.contextAfter
        }.max() ?? 0) + 3
        self.maxContextBefore = compiled.map(\.contextBefore).max() ?? 0
        self.maxMatchWidth = compiled.map(\.maxWidth).max() ?? 0
        self.shortestMatch = shortest == Int.max ? 0 : shortest
    }

    /// The engine's cheap check: whether `count` bytes are too few to hold any match (every
    /// detector's patterns need at least ``shortestMatch`` bytes). Such a value is forwarded as
    /// it is, without a masking pass.
    public func cannotMatch(byteCount count: Int) -> Bool {
        count < shortestMatch
    }

    /// A new stream masker (one per byte stream; not shared between threads at once).
    public func makeStreamMasker() throws -> StreamMasker {
        try StreamMasker(engine: self)
    }

    /// A new value masker (one per thread or connection; reused across values).
    public func makeValueMasker() -> ValueMasker {
        ValueMasker(engine: self)
    }

    /// One class-run finder per family, in `classRunFamilies` order.
    func makeClassRunFinders() -> [ClassRunFinder] {
        classRunFamilies.map { ClassRunFinder(kind: $0.kind, maxRun: Self.digitRunMaxWindow, overlap: detectors[$0.detector].maxWidth + 8) }
    }

    func makeDigitRunFinder() -> RunFinder? {
        guard digitRunDatabase != nil else { return nil }
        return RunFinder(minDigits: Self.digitRunMinDigits, maxRun: Self.digitRunMaxWindow, overlap: digitRunWidth + 3,
                         dottedMinDigits: digitRunDottedMinDigits, native: shortcuts)
    }

    /// Bytes of Hyperscan stream state per open stream.
    public var streamStateSize: Int { streamDatabase.streamStateSize }

    /// Bytes of one scratch space.
    public var scratchSize: Int { scratch.scratchSize }

    /// A Hyperscan pattern matching `word` literally, with word boundaries where it starts or ends
    /// with a word character.
    static func literalPattern(_ word: String) -> String {
        var pattern = ""
        for scalar in word.unicodeScalars {
            if scalar.isASCII, let value = UInt8(exactly: scalar.value),
               Validators.isAlnum(value) || value == UInt8(ascii: "_") || value == UInt8(ascii: " ") {
                pattern.unicodeScalars.append(scalar)
            } else if scalar.isASCII {
                pattern += String(format: "\\x%02x", scalar.value)
            } else {
                for byte in String(scalar).utf8 { pattern += String(format: "\\x%02x", byte) }
            }
        }
        let bytes = Array(word.utf8)
        let wordChar: (UInt8) -> Bool = { Validators.isAlnum($0) || $0 == UInt8(ascii: "_") }
        if let first = bytes.first, wordChar(first) { pattern = "\\b" + pattern }
        if let last = bytes.last, wordChar(last) { pattern += "\\b" }
        return pattern
    }

    /// The replacement for one match in `style`.
    func replacement(for detector: CompiledDetector, value: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        switch detector.style {
        case .redact, .null:
            out.append(contentsOf: detector.redaction)
        case .hash:
            let code = HMAC<SHA256>.authenticationCode(for: value, using: hashKey)
            out.append(contentsOf: "tok_".utf8)
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            var count = 0
            for byte in code {
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
                count += 1
                if count == 8 { break }
            }
        case .partial:
            Self.partial(detector: detector, value: value, into: &out)
        }
    }

    /// Partial masks keep what is commonly shown to support staff: the last four alphanumerics of
    /// cards, IBANs, phones and national ids; the first character and the domain of an email.
    /// Secrets are never shown in part.
    static func partial(detector: CompiledDetector, value: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let category = detector.definition.category
        if category == "secret" {
            out.append(contentsOf: detector.redaction)
            return
        }
        if let at = value.lastIndex(of: UInt8(ascii: "@")), at > 0 {
            out.append(value[0])
            out.append(contentsOf: "***".utf8)
            out.append(contentsOf: value[at...])
            return
        }
        let alnumCount = value.reduce(0) { $0 + (Validators.isAlnum($1) ? 1 : 0) }
        guard alnumCount >= 8 else {
            out.append(contentsOf: detector.redaction)
            return
        }
        var remaining = alnumCount
        for byte in value {
            if Validators.isAlnum(byte) {
                out.append(remaining <= 4 ? byte : UInt8(ascii: "*"))
                remaining -= 1
            } else {
                out.append(byte)
            }
        }
    }
}
