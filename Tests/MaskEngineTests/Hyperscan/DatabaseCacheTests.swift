import CHyperscan
import Foundation
import Testing
@testable import MaskEngine

/// A fresh, empty folder under the system's temporary folder.
func temporaryFolder() throws -> String {
    let path = (NSTemporaryDirectory() as NSString).appendingPathComponent(
        "sluice-cache-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct DatabaseCacheTests {
    static let expressions = [
        HyperscanExpression(pattern: "[a-z]+@example\\.com", flags: HS.caseless, id: 0, owner: "a"),
        HyperscanExpression(pattern: "\\d{3}-\\d{2}-\\d{4}", flags: 0, id: 1, owner: "b"),
    ]

    /// The input every engine comparison masks: the sample corpus plus planted values.
    static let input: [UInt8] = {
        var bytes = Array(StreamMaskerTests.planted.joined(separator: "\n").utf8)
        for name in ["api_json.txt", "app_log.txt", "psql.txt", "shell.txt"] {
            bytes += (FileManager.default.contents(atPath: Fixtures.samples + "/" + name).map { Array($0) }) ?? []
        }
        return bytes
    }()

    static func engine(cache: HyperscanDatabaseCache?) throws -> MaskingEngine {
        try MaskingEngine(detectors: Fixtures.detectors, hashKey: Array("test-key".utf8), cache: cache)
    }

    static func databases(of engine: MaskingEngine) -> [HyperscanDatabase] {
        [engine.streamDatabase, engine.blockDatabase] + engine.confirmDatabases + (engine.digitRunDatabase.map { [$0] } ?? [])
    }

    static func cacheFiles(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".hsdb") }.sorted()
            .map { (folder as NSString).appendingPathComponent($0) }
    }

    @Test func anEngineLoadedFromTheCacheMasksLikeAFreshCompile() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let reference = try Self.engine(cache: nil)
        let first = try Self.engine(cache: HyperscanDatabaseCache(directory: folder))
        #expect(Self.databases(of: first).allSatisfy { !$0.fromCache })
        let count = Self.databases(of: first).count
        #expect(try Self.cacheFiles(folder).count == count)

        let cache = HyperscanDatabaseCache(directory: folder)
        let second = try Self.engine(cache: cache)
        #expect(Self.databases(of: second).allSatisfy { $0.fromCache })
        // Databases and expression facts all come from files; nothing is compiled or written.
        #expect(cache.statistics.hits >= count)
        #expect(cache.statistics.misses == 0 && cache.statistics.rejected == 0 && cache.statistics.stores == 0)

        let expected = try maskOneShot(Self.input, engine: reference)
        #expect(expected != Self.input)
        #expect(try maskOneShot(Self.input, engine: second) == expected)
        #expect(try maskChunked(Self.input, sizes: [1, 7, 4096], engine: second) == expected)
        let values = reference.makeValueMasker()
        let cachedValues = second.makeValueMasker()
        for line in StreamMaskerTests.planted {
            #expect(try cachedValues.mask(line) == values.mask(line))
        }
        #expect(second.streamStateSize == reference.streamStateSize)
    }

    @Test func cacheFilesAreThisUsersAlone() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cacheFolder = folder + "/nested/hs"
        _ = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock,
                                  cache: HyperscanDatabaseCache(directory: cacheFolder))
        var info = stat()
        #expect(stat(cacheFolder, &info) == 0 && info.st_mode & 0o777 == 0o700)
        let files = try Self.cacheFiles(cacheFolder)
        #expect(files.count == 1)
        #expect(stat(files[0], &info) == 0 && info.st_mode & 0o777 == 0o600)
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: cacheFolder).count == 1)
    }

    @Test func aFolderOpenToOthersIsClosedBeforeUse() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(chmod(folder, 0o777) == 0)
        let cache = HyperscanDatabaseCache(directory: folder)
        _ = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: cache)
        var info = stat()
        #expect(stat(folder, &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(cache.statistics.stores == 1)
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give the folder to another user"))
    func aFolderOfAnotherUserIsNotUsed() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(chown(folder, 65534, 65534) == 0)
        let cache = HyperscanDatabaseCache(directory: folder)
        let database = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: cache)
        #expect(!database.fromCache)
        #expect(cache.statistics == .init())
        #expect(try Self.cacheFiles(folder).isEmpty)
    }

    @Test func aCacheFileOfAnotherUserOrWritableByOthersIsNotTrusted() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: HyperscanDatabaseCache(directory: folder))
        let file = try Self.cacheFiles(folder)[0]
        #expect(chmod(file, 0o666) == 0)
        let cache = HyperscanDatabaseCache(directory: folder)
        let database = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: cache)
        #expect(!database.fromCache)
        #expect(cache.statistics.rejected == 1)
        // Replaced by a file of the right mode.
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }

    /// Damages to a valid cache file; each must be refused, and the file replaced.
    static let damages: [(String, @Sendable (inout [UInt8]) -> Void)] = [
        ("empty", { $0 = [] }),
        ("header only", { $0 = Array($0.prefix(HyperscanDatabaseCache.headerSize)) }),
        ("truncated", { $0 = Array($0.prefix($0.count / 2)) }),
        ("one byte short", { $0.removeLast() }),
        ("one byte more", { $0.append(0) }),
        ("garbage", { $0 = Array(repeating: 0x5a, count: $0.count) }),
        ("bad magic", { $0[0] ^= 1 }),
        ("other format version", { $0[8] &+= 1 }),
        ("other key", { $0[20] ^= 0x80 }),
        ("payload bit flipped", { $0[$0.count - 10] ^= 0x04 }),
        ("payload hash wrong", { $0[60] ^= 0x01 }),
    ]

    @Test(arguments: damages.indices)
    func aDamagedCacheFileIsIgnoredAndReplaced(_ index: Int) throws {
        let (name, damage) = Self.damages[index]
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: HyperscanDatabaseCache(directory: folder))
        let file = try Self.cacheFiles(folder)[0]
        let good = try #require(FileManager.default.contents(atPath: file).map { Array($0) })
        var bad = good
        damage(&bad)
        try Data(bad).write(to: URL(fileURLWithPath: file))

        let cache = HyperscanDatabaseCache(directory: folder)
        let database = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: cache)
        #expect(!database.fromCache, "\(name)")
        #expect(cache.statistics == .init(hits: 0, misses: 0, rejected: 1, stores: 1), "\(name)")
        #expect(try PatternSetProbe.matches(database, "x bob@EXAMPLE.com 123-45-6789") == [true, true])
        #expect(FileManager.default.contents(atPath: file).map { Array($0) } != bad, "\(name): not replaced")
        #expect(good.count > HyperscanDatabaseCache.headerSize)
        let again = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: cache)
        #expect(again.fromCache, "\(name)")
    }

    /// A file whose header and payload hash are right but whose Hyperscan database is of another
    /// version or platform, or fails Hyperscan's own checksum: `hs_deserialize_database` decides.
    @Test(arguments: [4, 12, 40])
    func aFileHyperscanRefusesIsIgnored(_ offset: Int) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: HyperscanDatabaseCache(directory: folder))
        let file = try Self.cacheFiles(folder)[0]
        var bytes = try #require(FileManager.default.contents(atPath: file).map { Array($0) })
        let header = HyperscanDatabaseCache.headerSize
        // Hyperscan's header: magic, version (offset 4), length, platform (offset 12), crc32, ...
        bytes[header + offset] ^= 0x10
        let digest = HyperscanDatabaseCache.digest(bytes[header...])
        bytes.replaceSubrange(56..<88, with: digest)
        try Data(bytes).write(to: URL(fileURLWithPath: file))

        let cache = HyperscanDatabaseCache(directory: folder)
        let database = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: cache)
        #expect(!database.fromCache)
        #expect(cache.statistics.rejected == 1)
        #expect(try PatternSetProbe.matches(database, "bob@example.com") == [true, false])
    }

    @Test func expressionFactsFromTheCacheAreHyperscansAndADamagedFileIsIgnored() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let ssn = "\\d{3}-\\d{2}-\\d{4}"
        let fresh = try HyperscanDatabase.info(pattern: ssn, flags: 0, owner: "x", cache: nil)
        #expect(fresh == ExpressionInfo(minWidth: 11, maxWidth: 11, matchesAtEOD: false))
        let unbounded = try HyperscanDatabase.info(pattern: "a+$", flags: 0, owner: "x", cache: nil)
        #expect(unbounded.maxWidth == nil && unbounded.matchesAtEOD)

        let writer = HyperscanDatabaseCache(directory: folder)
        #expect(try HyperscanDatabase.info(pattern: ssn, flags: 0, owner: "x", cache: writer) == fresh)
        #expect(try HyperscanDatabase.info(pattern: "a+$", flags: 0, owner: "x", cache: writer) == unbounded)
        #expect(writer.statistics.stores == 2)

        let reader = HyperscanDatabaseCache(directory: folder)
        #expect(try HyperscanDatabase.info(pattern: ssn, flags: 0, owner: "x", cache: reader) == fresh)
        #expect(try HyperscanDatabase.info(pattern: "a+$", flags: 0, owner: "x", cache: reader) == unbounded)
        #expect(reader.statistics == .init(hits: 2, misses: 0, rejected: 0, stores: 0))
        // Other flags are another key.
        _ = try HyperscanDatabase.info(pattern: ssn, flags: HS.caseless, owner: "x", cache: reader)
        #expect(reader.statistics.misses == 1)

        let file = reader.path(for: HyperscanDatabaseCache.infoKey(pattern: ssn, flags: 0), suffix: HyperscanDatabaseCache.infoSuffix)
        var bytes = try #require(FileManager.default.contents(atPath: file).map { Array($0) })
        bytes[bytes.count - 17] ^= 0xFF  // the minimum width, without fixing the hash
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let third = HyperscanDatabaseCache(directory: folder)
        #expect(try HyperscanDatabase.info(pattern: ssn, flags: 0, owner: "x", cache: third) == fresh)
        #expect(third.statistics.rejected == 1 && third.statistics.stores == 1)
    }

    @Test func everyPartOfAnExpressionAndTheModeChangeTheKey() {
        let base = Self.expressions
        var keys: [[UInt8]] = [HyperscanDatabaseCache.key(expressions: base, mode: HS.modeBlock)]
        keys.append(HyperscanDatabaseCache.key(expressions: base, mode: HS.modeStream))
        var changed = base
        changed[0].pattern = "[a-z]+@example\\.org"
        keys.append(HyperscanDatabaseCache.key(expressions: changed, mode: HS.modeBlock))
        changed = base
        changed[1].flags |= HS.somLeftmost
        keys.append(HyperscanDatabaseCache.key(expressions: changed, mode: HS.modeBlock))
        changed = base
        changed[1].id = 7
        keys.append(HyperscanDatabaseCache.key(expressions: changed, mode: HS.modeBlock))
        keys.append(HyperscanDatabaseCache.key(expressions: base.reversed(), mode: HS.modeBlock))
        keys.append(HyperscanDatabaseCache.key(expressions: [base[0]], mode: HS.modeBlock))
        // Pattern boundaries are part of the key: "ab" + "c" is not "a" + "bc".
        let split1 = [HyperscanExpression(pattern: "ab", flags: 0, id: 0, owner: ""), HyperscanExpression(pattern: "c", flags: 0, id: 0, owner: "")]
        let split2 = [HyperscanExpression(pattern: "a", flags: 0, id: 0, owner: ""), HyperscanExpression(pattern: "bc", flags: 0, id: 0, owner: "")]
        keys.append(HyperscanDatabaseCache.key(expressions: split1, mode: HS.modeBlock))
        keys.append(HyperscanDatabaseCache.key(expressions: split2, mode: HS.modeBlock))
        #expect(Set(keys.map { HyperscanDatabaseCache.hex($0) }).count == keys.count)
        // The owner (only used in error messages) does not change the database.
        changed = base
        changed[0].owner = "someone else"
        #expect(HyperscanDatabaseCache.key(expressions: changed, mode: HS.modeBlock) == keys[0])
        // The key covers the Hyperscan version and the platform.
        #expect(HyperscanDatabaseCache.platformDescription.contains("/"))
    }

    @Test func aChangedPatternCompilesAFreshDatabase() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cache = HyperscanDatabaseCache(directory: folder)
        _ = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: cache)
        var changed = Self.expressions
        changed[0].pattern = "[a-z]+@example\\.org"
        let database = try HyperscanDatabase(expressions: changed, mode: HS.modeBlock, cache: cache)
        #expect(!database.fromCache)
        #expect(try PatternSetProbe.matches(database, "bob@example.com bob@example.org") == [true, false])
        #expect(try Self.cacheFiles(folder).count == 2)
    }

    @Test func enginesBuiltAtOnceInOneCacheFolderAllWork() async throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let expected = try maskOneShot(Self.input, engine: Self.engine(cache: nil))
        // Each round starts from an empty folder (round 0) or a full one (round 1).
        for round in 0..<2 {
            try await withThrowingTaskGroup(of: [UInt8].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        // Separate cache objects, as separate processes would have.
                        let engine = try Self.engine(cache: HyperscanDatabaseCache(directory: folder))
                        return try maskOneShot(Self.input, engine: engine)
                    }
                }
                for try await output in group { #expect(output == expected, "round \(round)") }
            }
        }
        let count = Self.databases(of: try Self.engine(cache: nil)).count
        #expect(try Self.cacheFiles(folder).count == count)
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).allSatisfy { !$0.hasPrefix(".tmp-") })
        let cache = HyperscanDatabaseCache(directory: folder)
        let engine = try Self.engine(cache: cache)
        #expect(Self.databases(of: engine).allSatisfy { $0.fromCache })
        #expect(cache.statistics.misses == 0 && cache.statistics.rejected == 0)
    }

    @Test func aFolderThatCannotBeCreatedMeansNoCache() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        let cache = HyperscanDatabaseCache(directory: file + "/hs")
        let database = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: cache)
        #expect(!database.fromCache)
        #expect(cache.statistics == .init())
        #expect(try PatternSetProbe.matches(database, "123-45-6789") == [false, true])
    }

    @Test func theFolderIsPrunedToItsLimitOldestFirst() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let probe = HyperscanDatabaseCache(directory: folder + "/probe")
        _ = try HyperscanDatabase(expressions: Self.expressions, mode: HS.modeBlock, cache: probe)
        let size = try FileManager.default.attributesOfItem(atPath: try Self.cacheFiles(folder + "/probe")[0])[.size] as! Int
        // Room for two files of about this size.
        let cache = HyperscanDatabaseCache(directory: folder + "/hs", limitBytes: size * 2 + size / 2)
        var keys: [[UInt8]] = []
        for index in 0..<4 {
            var expressions = Self.expressions
            expressions[1].pattern = "\\d{3}-\\d{2}-\\d{\(index + 4)}"
            keys.append(HyperscanDatabaseCache.key(expressions: expressions, mode: HS.modeBlock))
            _ = try HyperscanDatabase(expressions: expressions, mode: HS.modeBlock, cache: cache)
            // Distinct modification times.
            let path = cache.path(for: keys[index])
            var times = [timespec(tv_sec: 1_000_000 + index * 100, tv_nsec: 0), timespec(tv_sec: 1_000_000 + index * 100, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        }
        let files = try Self.cacheFiles(folder + "/hs")
        #expect(files.count == 2)
        #expect(Set(files) == [cache.path(for: keys[2]), cache.path(for: keys[3])])
    }

    @Test func theEnvironmentNamesTheFolderOrTurnsTheCacheOff() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for off in ["off", "OFF", "0", "none", ""] {
            #expect(HyperscanDatabaseCache.fromEnvironment(["SLUICE_CACHE_DIR": off, "HOME": "/root"], stateDirectory: folder) == nil)
        }
        #expect(HyperscanDatabaseCache.fromEnvironment(["SLUICE_CACHE_DIR": "/x/y", "HOME": "/root"], stateDirectory: folder)?.directory == "/x/y")
        #expect(HyperscanDatabaseCache.fromEnvironment(["XDG_CACHE_HOME": "/c", "HOME": "/h"], stateDirectory: folder)?.directory == folder + "/cache/hs")
        #expect(HyperscanDatabaseCache.fromEnvironment(["XDG_CACHE_HOME": "/c", "HOME": "/h"], stateDirectory: folder + "/missing")?.directory == "/c/sluice")
        #expect(HyperscanDatabaseCache.fromEnvironment(["XDG_CACHE_HOME": "/c", "HOME": "/h"])?.directory == "/c/sluice")
        #expect(HyperscanDatabaseCache.fromEnvironment(["HOME": "/h"])?.directory == "/h/.cache/sluice")
        #expect(HyperscanDatabaseCache.fromEnvironment([:]) == nil)
    }
}

/// Scans with one block database: which of its expression ids (0 and 1) match `text`.
enum PatternSetProbe {
    final class Hits { var ids: Set<UInt32> = [] }

    static func matches(_ database: HyperscanDatabase, _ text: String) throws -> [Bool] {
        let scratch = try ScratchPool(databases: [database])
        let hits = Hits()
        let status = try scratch.withScratch { raw in
            hs_scan(database.raw, text, UInt32(text.utf8.count), 0, raw, { id, _, _, _, context in
                Unmanaged<Hits>.fromOpaque(context!).takeUnretainedValue().ids.insert(id)
                return 0
            }, Unmanaged.passUnretained(hits).toOpaque())
        }
        #expect(status == HS.success)
        return [hits.ids.contains(0), hits.ids.contains(1)]
    }
}
