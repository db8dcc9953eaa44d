/// glibc's /etc/ld.so.cache, as glibc 2.36's `search_cache` (elf/dl-cache.c) reads it.
///
/// What we do about hwcaps, exactly:
/// - Entries marked with the hwcap extension (bit 62 set, nothing else in the upper
///   half) name a glibc-hwcaps subdirectory by index. Such an entry is usable when that
///   subdirectory is in the caller's supported list; among usable ones the earliest in
///   that list wins, and it beats a plain entry, as in the loader.
/// - Legacy hwcap entries (any other non-zero hwcap, from the pre-2.37 "tls", "x86_64",
///   "haswell" subdirectories) are skipped. glibc 2.37 dropped them, and ldconfig on
///   Debian 12 produces none because no such directories ship.
public struct LDSoCache: Sendable {
    public struct Entry: Sendable, Hashable {
        public var flags: Int32
        public var name: String
        public var path: String
        /// The glibc-hwcaps subdirectory ("x86-64-v3") of an extension entry.
        public var hwcapsSubdirectory: String?
        /// Non-zero legacy hwcap bits; such entries are never chosen.
        public var legacyHWCap: UInt64

        public init(flags: Int32, name: String, path: String, hwcapsSubdirectory: String?, legacyHWCap: UInt64) {
            self.flags = flags
            self.name = name
            self.path = path
            self.hwcapsSubdirectory = hwcapsSubdirectory
            self.legacyHWCap = legacyHWCap
        }
    }

    public enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        case unreadable(path: String, errno: Int32)
        case badFormat(path: String, what: String)

        public var description: String {
            switch self {
            case .unreadable(let p, let e): return "\(p): cannot read (errno \(e))"
            case .badFormat(let p, let w): return "\(p): not a usable ld.so.cache (\(w))"
            }
        }
    }

    /// In file order, which is the order the loader scans entries of the same name.
    public var entries: [Entry]
    private var byName: [String: [Int]]

    /// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64` and `| FLAG_AARCH64_LIB64`: the only flags the
    /// loader of each machine accepts (`_dl_cache_check_flags`).
    public static func expectedFlags(for machine: ELFFile.Machine) -> Int32 {
        switch machine {
        case .x86_64: return 0x0303
        case .aarch64: return 0x0a03
        }
    }

    public init(entries: [Entry]) {
        self.entries = entries
        var index: [String: [Int]] = [:]
        for (i, e) in entries.enumerated() { index[e.name, default: []].append(i) }
        byName = index
    }

    public init(path: String) throws(Error) {
        do {
            let parsed = try MappedFile.withMapping(path) { bytes in try Self.parse(bytes, path: path) }
            self.init(entries: parsed)
        } catch let error as Error {
            throw error
        } catch MappedFile.OpenError.system(let code) {
            throw .unreadable(path: path, errno: code)
        } catch {
            throw .badFormat(path: path, what: "empty file")
        }
    }

    /// The path the loader would take from the cache for `name`, or nil.
    /// `hwcapsPriority` lists the supported glibc-hwcaps subdirectories, best first.
    public func lookup(_ name: String, machine: ELFFile.Machine, hwcapsPriority: [String]) -> String? {
        guard let candidates = byName[name] else { return nil }
        let wanted = Self.expectedFlags(for: machine)
        var best: String?
        var bestRank = Int.max
        for i in candidates {
            let e = entries[i]
            guard e.flags == wanted else { continue }
            if let sub = e.hwcapsSubdirectory {
                guard let rank = hwcapsPriority.firstIndex(of: sub), rank < bestRank else { continue }
                bestRank = rank
                best = e.path
                continue
            }
            guard e.legacyHWCap == 0 else { continue }
            // The loader keeps a plain entry only if no hwcaps entry came first, then stops.
            if best == nil { best = e.path }
            break
        }
        return best
    }

    // MARK: format

    private static let oldMagic = Array("ld.so-1.7.0".utf8)
    private static let newMagic = Array("glibc-ld.so.cache1.1".utf8)
    private static let extensionMagic: UInt32 = 0xEAA4_2174
    private static let hwcapsExtensionTag: UInt32 = 1
    private static let hwcapExtensionBit: UInt64 = 1 << 62

    private static func hasMagic(_ b: MappedFile.Bytes, at offset: Int, _ magic: [UInt8]) -> Bool {
        guard offset >= 0, offset + magic.count <= b.count else { return false }
        return b.buffer[offset..<offset + magic.count].elementsEqual(magic)
    }

    static func parse(_ b: MappedFile.Bytes, path: String) throws(Error) -> [Entry] {
        if hasMagic(b, at: 0, newMagic) { return try parseNew(b, base: 0, path: path) }
        guard hasMagic(b, at: 0, oldMagic) else { throw .badFormat(path: path, what: "unknown magic") }
        guard let nlibs = b.load(12, as: UInt32.self) else { throw .badFormat(path: path, what: "short header") }
        let (oldSize, overflow) = UInt64(nlibs).multipliedReportingOverflow(by: 12)
        guard !overflow, b.range(16, oldSize) != nil else {
            throw .badFormat(path: path, what: "old entry table outside the file")
        }
        let end = 16 + Int(oldSize)
        // A combined cache puts the new format after the old table, aligned to
        // __alignof__(struct cache_file_new); probe both plausible alignments.
        for align in [8, 4] {
            let start = (end + align - 1) & ~(align - 1)
            if hasMagic(b, at: start, newMagic) { return try parseNew(b, base: start, path: path) }
        }
        return try parseOld(b, nlibs: Int(nlibs), path: path)
    }

    private static func parseOld(_ b: MappedFile.Bytes, nlibs: Int, path: String) throws(Error) -> [Entry] {
        // Old-format string offsets count from the end of the entry table.
        let strings = UInt64(16 + nlibs * 12)
        var result: [Entry] = []
        for i in 0..<nlibs {
            let at = UInt64(16 + i * 12)
            guard let flags = b.load(at, as: Int32.self), let key = b.load(at + 4, as: UInt32.self),
                let value = b.load(at + 8, as: UInt32.self),
                let name = b.cString(at: strings + UInt64(key)), let file = b.cString(at: strings + UInt64(value))
            else { throw .badFormat(path: path, what: "old entry \(i)") }
            result.append(Entry(flags: flags, name: name, path: file, hwcapsSubdirectory: nil, legacyHWCap: 0))
        }
        return result
    }

    private static func parseNew(_ b: MappedFile.Bytes, base: Int, path: String) throws(Error) -> [Entry] {
        let h = UInt64(base)
        guard let nlibs = b.load(h + 20, as: UInt32.self), let extensionOffset = b.load(h + 32, as: UInt32.self)
        else { throw .badFormat(path: path, what: "short header") }
        let entriesStart = h + 48
        guard b.range(entriesStart, UInt64(nlibs) * 24) != nil else {
            throw .badFormat(path: path, what: "entry table outside the file")
        }
        let subdirs = try hwcapsSubdirectories(b, base: h, extensionOffset: UInt64(extensionOffset), path: path)
        var result: [Entry] = []
        result.reserveCapacity(Int(nlibs))
        for i in 0..<UInt64(nlibs) {
            let at = entriesStart + i * 24
            // New-format string offsets count from the start of the new header.
            guard let flags = b.load(at, as: Int32.self), let key = b.load(at + 4, as: UInt32.self),
                let value = b.load(at + 8, as: UInt32.self), let hwcap = b.load(at + 16, as: UInt64.self),
                let name = b.cString(at: h + UInt64(key)), let file = b.cString(at: h + UInt64(value))
            else { throw .badFormat(path: path, what: "entry \(i)") }
            var entry = Entry(flags: flags, name: name, path: file, hwcapsSubdirectory: nil, legacyHWCap: hwcap)
            if hwcap >> 32 == hwcapExtensionBit >> 32 {
                let index = Int(hwcap & 0xFFFF_FFFF)
                // An index we cannot name can never match a supported subdirectory.
                entry.hwcapsSubdirectory = index < subdirs.count ? subdirs[index] : "\u{0}invalid"
                entry.legacyHWCap = 0
            }
            result.append(entry)
        }
        return result
    }

    private static func hwcapsSubdirectories(
        _ b: MappedFile.Bytes, base: UInt64, extensionOffset: UInt64, path: String
    ) throws(Error) -> [String] {
        guard extensionOffset != 0, let magic = b.load(base + extensionOffset, as: UInt32.self),
            magic == extensionMagic, let count = b.load(base + extensionOffset + 4, as: UInt32.self)
        else { return [] }
        for i in 0..<UInt64(min(count, 1024)) {
            let s = base + extensionOffset + 8 + i * 16
            guard let tag = b.load(s, as: UInt32.self), let offset = b.load(s + 8, as: UInt32.self),
                let size = b.load(s + 12, as: UInt32.self)
            else { throw .badFormat(path: path, what: "extension section \(i)") }
            guard tag == hwcapsExtensionTag else { continue }
            guard b.range(base + UInt64(offset), UInt64(size)) != nil else {
                throw .badFormat(path: path, what: "glibc-hwcaps section outside the file")
            }
            var names: [String] = []
            for j in 0..<UInt64(size / 4) {
                guard let str = b.load(base + UInt64(offset) + j * 4, as: UInt32.self),
                    let name = b.cString(at: base + UInt64(str))
                else { throw .badFormat(path: path, what: "glibc-hwcaps name \(j)") }
                names.append(name)
            }
            return names
        }
        return []
    }
}
