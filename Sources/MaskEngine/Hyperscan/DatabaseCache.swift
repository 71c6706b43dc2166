import CHyperscan
import Crypto
import Foundation

/// A folder of serialised Hyperscan databases, so that a process does not compile the same
/// patterns again on every start (compiling the corpora takes a few hundred milliseconds;
/// loading them takes a few).
///
/// A database is filed under a SHA-256 key of everything that determines it: every expression
/// (pattern bytes, flags, id) in order, the mode, the Hyperscan version string and the platform
/// (CPU features and tuning) it was compiled for. A file is trusted only when its header names that
/// key, its payload has the SHA-256 the header records, and `hs_deserialize_database` accepts it;
/// anything else (truncated, corrupt, another version or platform) is ignored, compiled afresh and
/// replaced. Files are written whole to a temporary name and renamed (mode 0600, folder 0700), and
/// the folder is pruned to `limitBytes`, oldest first. A folder that cannot be created, is not
/// owned by this user, or is writable by others means no cache, never an error.
public final class HyperscanDatabaseCache: Sendable {
    /// Environment variable naming the cache folder; `off` (or `0`, `none`, empty) disables it.
    public static let environmentVariable = "SLUICE_CACHE_DIR"
    /// The default bound on the folder's total size.
    public static let defaultLimit = 64 << 20
    static let fileSuffix = ".hsdb"
    static let magic: [UInt8] = Array("SLUICEHS".utf8)
    static let formatVersion: UInt32 = 1
    /// magic, format, reserved, key, payload length, payload SHA-256.
    static let headerSize = 8 + 4 + 4 + 32 + 8 + 32

    public let directory: String
    /// Total bytes of database files kept; older files are removed beyond it.
    public let limitBytes: Int

    /// What the cache did, for tests and diagnostics.
    public struct Statistics: Sendable, Equatable {
        /// Databases loaded from a file.
        public var hits = 0
        /// Lookups that found no file.
        public var misses = 0
        /// Files found but not trusted (bad header, hash, size, owner or Hyperscan refused them).
        public var rejected = 0
        /// Files written.
        public var stores = 0
    }

    private struct State {
        /// nil until the folder was checked; then whether it is usable.
        var usable: Bool?
        var statistics = Statistics()
    }

    private let state = Locked(State())

    public init(directory: String, limitBytes: Int = HyperscanDatabaseCache.defaultLimit) {
        self.directory = directory
        self.limitBytes = max(0, limitBytes)
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    // MARK: Where the cache lives

    /// The cache the environment asks for: `$SLUICE_CACHE_DIR` (`off` disables), else
    /// `stateDirectory/cache/hs` when that state folder exists, else `$XDG_CACHE_HOME/sluice`,
    /// else `~/.cache/sluice`; nil when caching is off or no folder can be named.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       stateDirectory: String? = nil) -> HyperscanDatabaseCache? {
        if let explicit = environment[environmentVariable] {
            let value = explicit.trimmingCharacters(in: .whitespaces)
            if value.isEmpty || ["off", "0", "none", "false", "no"].contains(value.lowercased()) { return nil }
            return HyperscanDatabaseCache(directory: value)
        }
        if let stateDirectory, isDirectory(stateDirectory) {
            return HyperscanDatabaseCache(directory: (stateDirectory as NSString).appendingPathComponent("cache/hs"))
        }
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") {
            return HyperscanDatabaseCache(directory: (xdg as NSString).appendingPathComponent("sluice"))
        }
        if let home = environment["HOME"], home.hasPrefix("/") {
            return HyperscanDatabaseCache(directory: (home as NSString).appendingPathComponent(".cache/sluice"))
        }
        return nil
    }

    private static let processDefault = Locked<HyperscanDatabaseCache??>(nil)

    /// The cache databases use when none is given: from the environment on first use, or what
    /// ``setDefault(_:)`` set.
    public static var `default`: HyperscanDatabaseCache? {
        processDefault.withLock { stored in
            if let stored { return stored }
            let resolved = fromEnvironment()
            stored = .some(resolved)
            return resolved
        }
    }

    /// Replaces the process default (nil: no cache).
    public static func setDefault(_ cache: HyperscanDatabaseCache?) {
        processDefault.withLock { $0 = .some(cache) }
    }

    // MARK: Keys

    /// The SHA-256 of everything that determines a compiled database.
    static func key(expressions: [HyperscanExpression], mode: UInt32) -> [UInt8] {
        var hasher = SHA256()
        func add(_ value: UInt64) {
            withUnsafeBytes(of: value.littleEndian) { hasher.update(bufferPointer: $0) }
        }
        func add(_ bytes: some Collection<UInt8>) {
            add(UInt64(bytes.count))
            hasher.update(data: Array(bytes))
        }
        add(Array("sluice-hs-cache".utf8))
        add(UInt64(formatVersion))
        add(Array(HS.version().utf8))
        add(Array(platformDescription.utf8))
        add(UInt64(mode))
        add(UInt64(expressions.count))
        for expression in expressions {
            add(UInt64(expression.id))
            add(UInt64(expression.flags))
            add(Array(expression.pattern.utf8))
        }
        return Array(hasher.finalize())
    }

    /// The target Hyperscan compiles for on this machine (`hs_populate_platform`) and the
    /// architecture and pointer size of this build.
    static let platformDescription: String = {
        var info = hs_platform_info_t()
        let status = hs_populate_platform(&info)
        #if arch(x86_64)
        let arch = "x86_64"
        #elseif arch(arm64)
        let arch = "arm64"
        #else
        let arch = "other"
        #endif
        return "\(arch)/\(MemoryLayout<Int>.size)/\(status)/\(info.tune)/\(info.cpu_features)/\(info.reserved1)/\(info.reserved2)"
    }()

    /// The SHA-256 of a payload, as the header records it.
    static func digest(_ bytes: some DataProtocol) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    func path(for key: [UInt8], suffix: String = HyperscanDatabaseCache.fileSuffix) -> String {
        (directory as NSString).appendingPathComponent(Self.hex(key) + suffix)
    }

    // MARK: The folder

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates the folder (0700) when missing and checks it is this user's and not writable by
    /// others. Checked once per cache object.
    private func folderIsUsable() -> Bool {
        if let usable = state.withLock({ $0.usable }) { return usable }
        let usable = Self.prepareFolder(directory)
        state.withLock { $0.usable = usable }
        return usable
    }

    private static func prepareFolder(_ directory: String) -> Bool {
        guard !directory.isEmpty else { return false }
        if !isDirectory(directory) {
            let parent = (directory as NSString).deletingLastPathComponent
            if !parent.isEmpty, !isDirectory(parent) {
                try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true,
                                                         attributes: [.posixPermissions: 0o700])
            }
            if mkdir(directory, 0o700) != 0, errno != EEXIST { return false }
        }
        var info = stat()
        guard stat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == geteuid() else { return false }
        if info.st_mode & 0o077 != 0 {
            // Ours but open to others: close it, or do not use it.
            guard chmod(directory, 0o700) == 0 else { return false }
        }
        return true
    }

    private func count(_ change: (inout Statistics) -> Void) {
        state.withLock { change(&$0.statistics) }
    }

    // MARK: Databases

    /// The database filed under `key`, or nil (no file, or a file not to be trusted).
    func load(key: [UInt8]) -> OpaquePointer? {
        guard let payload = loadPayload(key: key, suffix: Self.fileSuffix) else { return nil }
        var database: OpaquePointer?
        // Hyperscan checks its own header, version, platform and checksum.
        let status = payload.withUnsafeBytes { raw in
            hs_deserialize_database(raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count, &database)
        }
        guard status == HS.success, let database else {
            count { $0.rejected += 1 }
            return nil
        }
        count { $0.hits += 1 }
        return database
    }

    /// Files `database` under `key`. Failures (read-only folder, full disk) are silent: no cache.
    func store(key: [UInt8], database: OpaquePointer) {
        guard folderIsUsable() else { return }
        var serialised: UnsafeMutablePointer<CChar>?
        var length = 0
        guard hs_serialize_database(database, &serialised, &length) == HS.success, let serialised else { return }
        defer { free(serialised) }
        storePayload(key: key, suffix: Self.fileSuffix, payload: UnsafeRawBufferPointer(start: serialised, count: length))
    }

    // MARK: Expression facts

    static let infoSuffix = ".hsinfo"

    /// The key of `hs_expression_info` for one pattern: pattern bytes, flags, Hyperscan version.
    static func infoKey(pattern: String, flags: UInt32) -> [UInt8] {
        var hasher = SHA256()
        for part in ["sluice-hs-info", String(formatVersion), HS.version(), String(flags)] {
            hasher.update(data: Array(part.utf8) + [0])
        }
        hasher.update(data: Array(pattern.utf8))
        return Array(hasher.finalize())
    }

    func loadInfo(key: [UInt8]) -> ExpressionInfo? {
        guard let payload = loadPayload(key: key, suffix: Self.infoSuffix) else { return nil }
        guard payload.count == 17 else {
            count { $0.rejected += 1 }
            return nil
        }
        let minWidth = Self.readUInt64(payload, at: 0)
        let maxWidth = Self.readUInt64(payload, at: 8)
        guard minWidth < UInt64(Int32.max), maxWidth == UInt64.max || (maxWidth >= minWidth && maxWidth < UInt64(Int32.max)),
              payload[16] <= 1 else {
            count { $0.rejected += 1 }
            return nil
        }
        count { $0.hits += 1 }
        return ExpressionInfo(minWidth: Int(minWidth), maxWidth: maxWidth == UInt64.max ? nil : Int(maxWidth),
                              matchesAtEOD: payload[16] == 1)
    }

    func storeInfo(key: [UInt8], info: ExpressionInfo) {
        var payload = [UInt8]()
        withUnsafeBytes(of: UInt64(info.minWidth).littleEndian) { payload += $0 }
        withUnsafeBytes(of: (info.maxWidth.map { UInt64($0) } ?? UInt64.max).littleEndian) { payload += $0 }
        payload.append(info.matchesAtEOD ? 1 : 0)
        payload.withUnsafeBytes { storePayload(key: key, suffix: Self.infoSuffix, payload: $0) }
    }

    // MARK: Files

    /// The payload of the file filed under `key`, when its header names `key` and the payload has
    /// the recorded length and SHA-256; nil otherwise.
    private func loadPayload(key: [UInt8], suffix: String) -> [UInt8]? {
        guard folderIsUsable() else { return nil }
        let fd = open(path(for: key, suffix: suffix), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            count { $0.misses += 1 }
            return nil
        }
        defer { close(fd) }
        guard let payload = Self.read(fd: fd, key: key, limit: limitBytes) else {
            count { $0.rejected += 1 }
            return nil
        }
        return payload
    }

    private static func read(fd: Int32, key: [UInt8], limit: Int) -> [UInt8]? {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == geteuid(),
              info.st_mode & 0o022 == 0 else { return nil }
        let size = Int(info.st_size)
        guard size > headerSize, size <= max(limit, headerSize + 1) else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let complete = bytes.withUnsafeMutableBytes { buffer -> Bool in
            var offset = 0
            while offset < size {
                let n = Foundation.read(fd, buffer.baseAddress! + offset, size - offset)
                if n < 0, errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        guard complete, bytes[0..<8].elementsEqual(magic),
              readUInt32(bytes, at: 8) == formatVersion,
              bytes[16..<48].elementsEqual(key),
              readUInt64(bytes, at: 48) == UInt64(size - headerSize) else { return nil }
        let payload = Array(bytes[headerSize...])
        guard digest(payload) == Array(bytes[56..<88]) else { return nil }
        // Mark it used (hourly at most), so pruning removes the files no longer asked for first.
        if Date().timeIntervalSince1970 - modified(info) > 3600 { _ = futimens(fd, nil) }
        return payload
    }

    static func modified(_ info: stat) -> Double {
        #if os(Linux)
        Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        #else
        Double(info.st_mtimespec.tv_sec) + Double(info.st_mtimespec.tv_nsec) / 1e9
        #endif
    }

    private static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    private static func readUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    /// Writes header and payload to a temporary file and renames it into place, so a reader sees
    /// the whole file or none.
    private func storePayload(key: [UInt8], suffix: String, payload: UnsafeRawBufferPointer) {
        guard folderIsUsable(), !payload.isEmpty, payload.count + Self.headerSize <= limitBytes else { return }
        var file = [UInt8]()
        file.reserveCapacity(Self.headerSize + payload.count)
        file += Self.magic
        withUnsafeBytes(of: Self.formatVersion.littleEndian) { file += $0 }
        withUnsafeBytes(of: UInt32(0)) { file += $0 }
        file += key
        withUnsafeBytes(of: UInt64(payload.count).littleEndian) { file += $0 }
        file += Self.digest(payload)
        file += payload
        let final = path(for: key, suffix: suffix)
        var random = SystemRandomNumberGenerator()
        let temporary = (directory as NSString).appendingPathComponent(
            ".tmp-\(Self.hex(Array(key.prefix(8))))-\(getpid())-\(String(random.next() as UInt64, radix: 36))")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let written = file.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0, errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        guard close(fd) == 0, written, rename(temporary, final) == 0 else {
            unlink(temporary)
            return
        }
        count { $0.stores += 1 }
        prune(keeping: final)
    }

    /// Removes the least recently used cache files beyond `limitBytes`, and temporary files
    /// a crashed writer left (older than ten minutes).
    func prune(keeping kept: String? = nil) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let now = Date().timeIntervalSince1970
        var files: [(path: String, size: Int, modified: Double)] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            let modified = Self.modified(info)
            if name.hasPrefix(".tmp-") {
                if now - modified > 600 { unlink(path) }
            } else if name.hasSuffix(Self.fileSuffix) || name.hasSuffix(Self.infoSuffix) {
                files.append((path, Int(info.st_size), modified))
            }
        }
        var total = files.reduce(0) { $0 + $1.size }
        guard total > limitBytes else { return }
        for file in files.sorted(by: { $0.modified < $1.modified }) where total > limitBytes {
            if file.path == kept { continue }
            if unlink(file.path) == 0 { total -= file.size }
        }
    }
}
