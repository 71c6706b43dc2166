import CHyperscan
import Foundation

/// An error raised by Hyperscan or by compiling a detector's pattern.
///
/// The description names the detector and Hyperscan's reason; it never contains scanned bytes.
public struct HyperscanError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let unsupportedPlatform = Code(rawValue: "HS_UNSUPPORTED_PLATFORM")
        public static let compileFailed = Code(rawValue: "HS_COMPILE_FAILED")
        public static let scanFailed = Code(rawValue: "HS_SCAN_FAILED")
        public static let allocationFailed = Code(rawValue: "HS_ALLOC_FAILED")
        public var description: String { rawValue }
    }

    public let code: Code
    /// The detector whose pattern failed, when the error is about one pattern.
    public let detector: String?
    /// Hyperscan's own reason (a fixed message from the library, never input data).
    public let reason: String
    /// The numeric `hs_error_t`, when Hyperscan returned one.
    public let status: Int32?

    public init(code: Code, detector: String? = nil, reason: String, status: Int32? = nil) {
        self.code = code
        self.detector = detector
        self.reason = reason
        self.status = status
    }

    public var description: String {
        var text = "\(code)"
        if let detector { text += " detector=\(detector)" }
        if let status { text += " hs_error=\(status)" }
        return text + ": \(reason)"
    }
}

/// Pattern flags and database modes, spelled once (the C macros with shifts do not import).
enum HS {
    static let caseless: UInt32 = 1
    static let dotall: UInt32 = 2
    static let multiline: UInt32 = 4
    static let singlematch: UInt32 = 8
    static let allowEmpty: UInt32 = 16
    static let somLeftmost: UInt32 = 256
    static let modeBlock: UInt32 = 1
    static let modeStream: UInt32 = 2
    static let modeVectored: UInt32 = 4
    static let somHorizonSmall: UInt32 = 1 << 26
    static let success: Int32 = 0
    static let scanTerminated: Int32 = -3

    /// Checks that this CPU can run Hyperscan (SSSE3 at least). Call once at start.
    static func checkPlatform() throws {
        let status = hs_valid_platform()
        guard status == success else {
            throw HyperscanError(code: .unsupportedPlatform,
                                 reason: "this CPU lacks the instructions Hyperscan needs (SSSE3)",
                                 status: status)
        }
    }

    static func version() -> String {
        guard let raw = hs_version() else { return "unknown" }
        return String(cString: raw)
    }
}

/// One expression to compile: the pattern text, its flags and the id its matches report.
struct HyperscanExpression {
    var pattern: String
    var flags: UInt32
    var id: UInt32
    /// The detector this expression belongs to, for error messages.
    var owner: String
}

/// Facts about one expression that Hyperscan derives without compiling a database.
struct ExpressionInfo: Equatable {
    var minWidth: Int
    /// `nil` when the pattern is unbounded.
    var maxWidth: Int?
    var matchesAtEOD: Bool
}

/// A compiled Hyperscan database. Immutable after compilation and safe to share between threads.
final class HyperscanDatabase: @unchecked Sendable {
    let raw: OpaquePointer
    let mode: UInt32
    /// Whether the database was loaded from `cache` instead of compiled.
    let fromCache: Bool

    /// Compiles `expressions`, or loads the same database from `cache` when it holds one (and
    /// files a freshly compiled one there). The cache is keyed by everything that determines
    /// the database, so a loaded database is the one compiling would give.
    init(expressions: [HyperscanExpression], mode: UInt32,
         cache: HyperscanDatabaseCache? = HyperscanDatabaseCache.default) throws {
        precondition(!expressions.isEmpty, "a database needs at least one expression")
        self.mode = mode
        let key = cache.map { _ in HyperscanDatabaseCache.key(expressions: expressions, mode: mode) }
        if let cache, let key, let loaded = cache.load(key: key) {
            self.raw = loaded
            self.fromCache = true
            return
        }
        var db: OpaquePointer?
        var compileError: UnsafeMutablePointer<hs_compile_error_t>?
        let cStrings = expressions.map { strdup($0.pattern) }
        defer { cStrings.forEach { free($0) } }
        let flags = expressions.map { $0.flags }
        let ids = expressions.map { $0.id }
        let constStrings: [UnsafePointer<CChar>?] = cStrings.map { $0.map { UnsafePointer($0) } }
        let status = constStrings.withUnsafeBufferPointer { patterns in
            hs_compile_multi(patterns.baseAddress, flags, ids, UInt32(expressions.count), mode, nil, &db, &compileError)
        }
        guard status == HS.success, let db else {
            var owner: String?
            var reason = "compilation failed"
            if let compileError {
                let index = Int(compileError.pointee.expression)
                if index >= 0, index < expressions.count { owner = expressions[index].owner }
                if let message = compileError.pointee.message { reason = String(cString: message) }
                hs_free_compile_error(compileError)
            }
            throw HyperscanError(code: .compileFailed, detector: owner, reason: reason, status: status)
        }
        self.raw = db
        self.fromCache = false
        if let cache, let key { cache.store(key: key, database: db) }
    }

    deinit { hs_free_database(raw) }

    /// Bytes of stream state one open stream of this database holds.
    var streamStateSize: Int {
        var size = 0
        _ = hs_stream_size(raw, &size)
        return size
    }

    /// Bytes of the compiled database.
    var databaseSize: Int {
        var size = 0
        _ = hs_database_size(raw, &size)
        return size
    }

    /// What Hyperscan derives about one pattern (widths, end-of-data matches), from `cache` when
    /// it holds the answer (`hs_expression_info` costs nearly a compile).
    static func info(pattern: String, flags: UInt32, owner: String,
                     cache: HyperscanDatabaseCache? = HyperscanDatabaseCache.default) throws -> ExpressionInfo {
        let key = cache.map { _ in HyperscanDatabaseCache.infoKey(pattern: pattern, flags: flags) }
        if let cache, let key, let known = cache.loadInfo(key: key) { return known }
        var info: UnsafeMutablePointer<hs_expr_info_t>?
        var compileError: UnsafeMutablePointer<hs_compile_error_t>?
        let status = hs_expression_info(pattern, flags, &info, &compileError)
        guard status == HS.success, let info else {
            var reason = "invalid expression"
            if let compileError {
                if let message = compileError.pointee.message { reason = String(cString: message) }
                hs_free_compile_error(compileError)
            }
            throw HyperscanError(code: .compileFailed, detector: owner, reason: reason, status: status)
        }
        defer { free(info) }
        let maxWidth = info.pointee.max_width == UInt32.max ? nil : Int(info.pointee.max_width)
        let result = ExpressionInfo(minWidth: Int(info.pointee.min_width), maxWidth: maxWidth,
                                    matchesAtEOD: info.pointee.matches_at_eod != 0)
        if let cache, let key { cache.storeInfo(key: key, info: result) }
        return result
    }
}

/// Scratch space for scanning, handed out so that no two threads ever use one scratch at once.
///
/// A scan borrows a scratch, uses it on the calling thread and gives it back; the pool grows to
/// the number of threads that scan at the same time and no further.
final class ScratchPool: Sendable {
    private let prototype: Prototype
    private let free: Locked<[UnsafeScratch]>
    private let limit: Int

    private final class Prototype: @unchecked Sendable {
        let raw: OpaquePointer
        init(raw: OpaquePointer) { self.raw = raw }
        deinit { hs_free_scratch(raw) }
    }

    struct UnsafeScratch: @unchecked Sendable {
        let raw: OpaquePointer
    }

    /// Allocates one scratch large enough for every database given.
    init(databases: [HyperscanDatabase], limit: Int = 256) throws {
        var scratch: OpaquePointer?
        for db in databases {
            let status = hs_alloc_scratch(db.raw, &scratch)
            guard status == HS.success else {
                if let scratch { hs_free_scratch(scratch) }
                throw HyperscanError(code: .allocationFailed, reason: "hs_alloc_scratch failed", status: status)
            }
        }
        self.prototype = Prototype(raw: scratch!)
        self.free = Locked([])
        self.limit = limit
    }

    deinit {
        free.withLock { list in
            for scratch in list { hs_free_scratch(scratch.raw) }
            list.removeAll()
        }
    }

    /// Runs `body` with a scratch that no other thread holds meanwhile.
    func withScratch<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        let borrowed = try free.withLock { list -> UnsafeScratch in
            if let last = list.popLast() { return last }
            var clone: OpaquePointer?
            let status = hs_clone_scratch(prototype.raw, &clone)
            guard status == HS.success, let clone else {
                throw HyperscanError(code: .allocationFailed, reason: "hs_clone_scratch failed", status: status)
            }
            return UnsafeScratch(raw: clone)
        }
        defer {
            free.withLock { list in
                if list.count < limit { list.append(borrowed) } else { hs_free_scratch(borrowed.raw) }
            }
        }
        return try body(borrowed.raw)
    }

    /// Bytes of one scratch.
    var scratchSize: Int {
        var size = 0
        _ = hs_scratch_size(prototype.raw, &size)
        return size
    }
}
