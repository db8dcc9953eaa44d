#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the dynamic loader of a tree (Debian 12, glibc 2.36) consults besides the objects
/// themselves: ld.so.cache, the built-in system directories, the glibc-hwcaps
/// subdirectories the CPU supports, and the values of $LIB and $PLATFORM.
///
/// `root` lets the whole configuration come from another tree; every path it returns is a
/// path inside that tree (as the loader there would see it), and `hostPath` maps it back.
public struct LinkerConfig: Sendable {
    public var root: String
    public var machine: ELFFile.Machine
    /// nil when the tree has no cache: the loader then goes straight to the default dirs.
    public var cache: LDSoCache?
    /// Directories from ld.so.conf (and its includes), in order. The loader never reads
    /// them: they only matter through the cache ldconfig built from them.
    public var configuredDirectories: [String]
    /// Supported glibc-hwcaps subdirectories, best first (e.g. ["x86-64-v3", "x86-64-v2"]).
    public var hwcapsSubdirectories: [String]

    public init(root: String = "/", machine: ELFFile.Machine = .host) throws(LDSoCache.Error) {
        self.root = root
        self.machine = machine
        let prefix = root == "/" ? "" : String(root.reversed().drop(while: { $0 == "/" }).reversed())
        func inRoot(_ p: String) -> String { prefix + p }
        do {
            cache = try LDSoCache(path: inRoot("/etc/ld.so.cache"))
        } catch LDSoCache.Error.unreadable(_, let code) where code == ENOENT {
            cache = nil
        }
        configuredDirectories = Self.readConf(inRoot("/etc/ld.so.conf"), prefix: prefix, depth: 0)
        hwcapsSubdirectories =
            machine == ELFFile.Machine.host ? Self.supportedHWCaps(machine: machine, cpuinfo: Self.cpuFlags()) : []
    }

    /// Maps a path inside the tree to the path to open on this machine.
    public func hostPath(_ path: String) -> String {
        guard root != "/", path.hasPrefix("/") else { return path }
        return String(root.reversed().drop(while: { $0 == "/" }).reversed()) + path
    }

    /// glibc's built-in search path (the "system search path" of `ld.so --help`). Debian's
    /// loader has only the multiarch and plain lib dirs, not lib64.
    public func defaultDirectories(for machine: ELFFile.Machine) -> [String] {
        let triplet = Self.multiarchTriplet(machine)
        return ["/lib/\(triplet)", "/usr/lib/\(triplet)", "/lib", "/usr/lib"]
    }

    /// PT_INTERP of ordinary executables; ldd loads a library with it too.
    public func defaultInterpreter(for machine: ELFFile.Machine) -> String {
        switch machine {
        case .x86_64: return "/lib64/ld-linux-x86-64.so.2"
        case .aarch64: return "/lib/ld-linux-aarch64.so.1"
        }
    }

    /// $LIB: Debian builds glibc with slibdir=/lib/<triplet>.
    public func libToken(for machine: ELFFile.Machine) -> String { "lib/\(Self.multiarchTriplet(machine))" }

    /// $PLATFORM: AT_PLATFORM, which the kernel sets to the machine name on both.
    public func platformToken(for machine: ELFFile.Machine) -> String { machine.description }

    public func cacheLookup(_ name: String, machine: ELFFile.Machine) -> String? {
        cache?.lookup(name, machine: machine, hwcapsPriority: machine == self.machine ? hwcapsSubdirectories : [])
    }

    static func multiarchTriplet(_ machine: ELFFile.Machine) -> String {
        switch machine {
        case .x86_64: return "x86_64-linux-gnu"
        case .aarch64: return "aarch64-linux-gnu"
        }
    }

    // MARK: glibc-hwcaps

    /// The x86-64 micro-architecture levels as glibc 2.36 defines them
    /// (sysdeps/x86/get-isa-level.h), from /proc/cpuinfo flag names instead of cpuid: the
    /// kernel drops AVX flags when it does not enable the state, which covers OSXSAVE.
    /// aarch64 has no glibc-hwcaps subdirectories in 2.36.
    static func supportedHWCaps(machine: ELFFile.Machine, cpuinfo flags: Set<String>) -> [String] {
        guard machine == .x86_64 else { return [] }
        let v2: Set = ["cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"]
        let v3: Set = ["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"]
        let v4: Set = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]
        guard v2.isSubset(of: flags) else { return [] }
        guard v3.isSubset(of: flags) else { return ["x86-64-v2"] }
        guard v4.isSubset(of: flags) else { return ["x86-64-v3", "x86-64-v2"] }
        return ["x86-64-v4", "x86-64-v3", "x86-64-v2"]
    }

    static func cpuFlags() -> Set<String> {
        guard let text = readSmallFile("/proc/cpuinfo") else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    // MARK: ld.so.conf

    /// ldconfig's reading: one directory per line (an old "=type" suffix stripped),
    /// `include GLOB...` relative to the including file's directory, `hwcap` ignored.
    static func readConf(_ hostFile: String, prefix: String, depth: Int) -> [String] {
        // Include cycles are a configuration error; a depth limit keeps them finite.
        guard depth < 16, let text = readSmallFile(hostFile) else { return [] }
        var dirs: [String] = []
        for rawLine in text.split(separator: "\n") {
            let line = rawLine.prefix(while: { $0 != "#" }).trimmingSpaces()
            if line.isEmpty { continue }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.first == "include" {
                let hostDir = String(hostFile[..<(hostFile.lastIndex(of: "/") ?? hostFile.startIndex)])
                for pattern in words.dropFirst() {
                    let hostPattern = pattern.hasPrefix("/") ? prefix + pattern : hostDir + "/" + pattern
                    for file in expandGlob(hostPattern) {
                        dirs += readConf(file, prefix: prefix, depth: depth + 1)
                    }
                }
            } else if words.first == "hwcap" {
                continue
            } else {
                var dir = String(line)
                if let eq = dir.firstIndex(of: "=") { dir = String(dir[..<eq]) }
                while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
                if !dirs.contains(dir) { dirs.append(dir) }
            }
        }
        return dirs
    }

    static func expandGlob(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard glob(pattern, 0, nil, &g) == 0 else { return [] }
        var result: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { result.append(String(cString: p)) }
        }
        return result
    }

    /// Whole small text file (config, /proc); nil if it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            data += chunk[0..<n]
            // Config files are small; refusing huge ones keeps a hostile tree from eating memory.
            if data.count > 16 << 20 { return nil }
        }
        return String(decoding: data, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        let start = firstIndex(where: { !isSpace($0) }) ?? endIndex
        let end = lastIndex(where: { !isSpace($0) }).map { index(after: $0) } ?? start
        return self[start..<end]
    }
}
