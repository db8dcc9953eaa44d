import JailKit
import Testing

@Suite struct LinkerConfigTests {
    @Test func cacheFindsLibc() throws {
        let config = try LinkerConfig()
        let cache = try #require(config.cache)
        #expect(cache.entries.count > 10)
        #expect(config.cacheLookup("libc.so.6", machine: .x86_64) == "/lib/x86_64-linux-gnu/libc.so.6")
        #expect(config.cacheLookup("libc.so.6", machine: .aarch64) == nil)
        #expect(config.cacheLookup("libdoesnotexist.so.9", machine: .x86_64) == nil)
    }

    @Test func confIncludesAreFollowed() throws {
        let config = try LinkerConfig()
        #expect(config.configuredDirectories.contains("/usr/lib/x86_64-linux-gnu"))
        #expect(config.configuredDirectories.contains("/usr/local/lib"))
    }

    @Test func defaultDirectoriesFollowDebianLoader() throws {
        let config = try LinkerConfig()
        #expect(
            config.defaultDirectories(for: .x86_64) == [
                "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib",
            ])
    }

    @Test func hwcapsEntriesPickTheBestSupportedLevel() {
        let cache = LDSoCache(entries: [
            .init(flags: 0x0303, name: "libx.so.1", path: "/v4/libx.so.1", hwcapsSubdirectory: "x86-64-v4", legacyHWCap: 0),
            .init(flags: 0x0303, name: "libx.so.1", path: "/v2/libx.so.1", hwcapsSubdirectory: "x86-64-v2", legacyHWCap: 0),
            .init(flags: 0x0303, name: "libx.so.1", path: "/v3/libx.so.1", hwcapsSubdirectory: "x86-64-v3", legacyHWCap: 0),
            .init(flags: 0x0303, name: "libx.so.1", path: "/plain/libx.so.1", hwcapsSubdirectory: nil, legacyHWCap: 0),
            .init(flags: 0x0a03, name: "liby.so.1", path: "/arm/liby.so.1", hwcapsSubdirectory: nil, legacyHWCap: 0),
            .init(flags: 0x0303, name: "liby.so.1", path: "/legacy/liby.so.1", hwcapsSubdirectory: nil, legacyHWCap: 1),
            .init(flags: 0x0303, name: "liby.so.1", path: "/x86/liby.so.1", hwcapsSubdirectory: nil, legacyHWCap: 0),
        ])
        #expect(cache.lookup("libx.so.1", machine: .x86_64, hwcapsPriority: ["x86-64-v3", "x86-64-v2"]) == "/v3/libx.so.1")
        #expect(cache.lookup("libx.so.1", machine: .x86_64, hwcapsPriority: []) == "/plain/libx.so.1")
        #expect(cache.lookup("liby.so.1", machine: .x86_64, hwcapsPriority: []) == "/x86/liby.so.1")
        #expect(cache.lookup("liby.so.1", machine: .aarch64, hwcapsPriority: []) == "/arm/liby.so.1")
    }

    @Test func garbageCacheIsATypedError() throws {
        let dir = try #require(ELFTestSupport.makeTempDirectory())
        defer { ELFTestSupport.removeTree(dir) }
        let real = try #require(ELFTestSupport.read("/etc/ld.so.cache"))
        let bad = dir + "/cache"
        #expect(ELFTestSupport.write(Array("not a cache at all".utf8), to: bad))
        #expect(throws: LDSoCache.Error.self) { try LDSoCache(path: bad) }
        // A cut-off header or entry table throws; a cut into the string table at least never traps.
        for length in [20, 40, 100, real.count / 2] {
            #expect(ELFTestSupport.write(Array(real.prefix(length)), to: bad))
            _ = try? LDSoCache(path: bad)
        }
        #expect(ELFTestSupport.write(Array(real.prefix(40)), to: bad))
        #expect(throws: LDSoCache.Error.self) { try LDSoCache(path: bad) }
    }

    @Test func rootRedirectsConfiguration() throws {
        let dir = try #require(ELFTestSupport.makeTempDirectory())
        defer { ELFTestSupport.removeTree(dir) }
        _ = ELFTestSupport.run("mkdir -p \(dir)/etc/ld.so.conf.d && cp /etc/ld.so.cache \(dir)/etc/")
        #expect(ELFTestSupport.write(Array("include ld.so.conf.d/*.conf\n/opt/a=libc6 # comment\n".utf8), to: dir + "/etc/ld.so.conf"))
        #expect(ELFTestSupport.write(Array("/opt/b/\n".utf8), to: dir + "/etc/ld.so.conf.d/b.conf"))
        let config = try LinkerConfig(root: dir)
        #expect(config.configuredDirectories == ["/opt/b", "/opt/a"])
        #expect(config.cacheLookup("libc.so.6", machine: .x86_64) == "/lib/x86_64-linux-gnu/libc.so.6")
        let empty = try LinkerConfig(root: dir + "/nothing")
        #expect(empty.cache == nil)
    }

    /// "ld.so-1.7.0" caches: alone (string offsets from the end of the table) and as a
    /// prefix in front of the new format (new offsets from the new header).
    @Test func oldFormatCaches() throws {
        let dir = try #require(ELFTestSupport.makeTempDirectory())
        defer { ELFTestSupport.removeTree(dir) }
        func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let magic = Array("ld.so-1.7.0".utf8) + [0]

        let strings = Array("libq.so.1\u{0}/x/libq.so.1\u{0}".utf8)
        let old = magic + le32(1) + le32(0x0303) + le32(0) + le32(10) + strings
        let oldPath = dir + "/old"
        #expect(ELFTestSupport.write(old, to: oldPath))
        let oldCache = try LDSoCache(path: oldPath)
        #expect(oldCache.lookup("libq.so.1", machine: .x86_64, hwcapsPriority: []) == "/x/libq.so.1")

        let real = try #require(ELFTestSupport.read("/etc/ld.so.cache"))
        let combinedPath = dir + "/combined"
        #expect(ELFTestSupport.write(magic + le32(0) + real, to: combinedPath))
        let combined = try LDSoCache(path: combinedPath)
        #expect(combined.lookup("libc.so.6", machine: .x86_64, hwcapsPriority: []) == "/lib/x86_64-linux-gnu/libc.so.6")
    }
}
