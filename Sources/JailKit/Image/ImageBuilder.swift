#if canImport(Glibc)
import Glibc
#endif

/// Turns an ImageSpec into an ImagePlan: the ELF closure of its binaries, its files
/// (globs, directories copied recursively) with every symlink on their way, its empty
/// directories, mount points, and its own passwd/group. Reads the host, writes nothing.
public struct ImageBuilder {
    public let closure: ELFClosure
    /// Built-in rules, run in this order after binaries, files and directories: later
    /// rules look at what earlier ones added (PAM modules for sshd from a package, gconv
    /// for a PHP program, NSS for the shadow PAM needs).
    public let rules: [any ImageRule]

    public static let defaultRules: [any ImageRule] = [
        PackagesRule(), DlopenRule(), PAMRule(), PHPRule(), GconvRule(), NSSRule(), HostsRule(),
        TimezoneRule(), CACertificatesRule(), TerminfoRule(),
    ]

    /// Directories every image has: mount points of the launch plan, and /etc.
    public static let baseDirectories = ["/dev", "/etc", "/proc", "/root", "/run", "/sys", "/tmp"]

    public init(closure: ELFClosure, rules: [any ImageRule] = ImageBuilder.defaultRules) {
        self.closure = closure
        self.rules = rules
    }

    public static func host() throws -> ImageBuilder {
        do {
            return ImageBuilder(closure: ELFClosure(config: try LinkerConfig()))
        } catch {
            throw JailError(.image, "reading the dynamic linker's configuration: \(error)")
        }
    }

    /// Non-file values a plan depends on, as recorded in its manifest.
    public static func parameters(users: [String], groups: [String]) -> [String: String] {
        ["users": Set(users).sorted().joined(separator: ","), "groups": Set(groups).sorted().joined(separator: ",")]
    }

    public func plan(_ spec: ImageSpec, users: [String] = [], groups: [String] = []) throws -> ImagePlan {
        var plan = ImagePlan()
        for d in Self.baseDirectories { plan.add(d, .directory, reason: "mount point / base directory") }
        // A host without passwd or group files has no users to look up: root and nobody
        // (always in the image) are all an image can then get.
        let hostPasswd = (try? FS.readText("/etc/passwd")) ?? ""
        let hostGroup = (try? FS.readText("/etc/group")) ?? ""
        // What the plan depends on besides copied files, for staleness checks.
        plan.parameters = Self.parameters(users: users, groups: groups)
        // The spec decides everything else. The host's passwd is not an input: it changes
        // with every user added on the host, and only the few entries picked matter.
        if !spec.file.isEmpty { plan.noteInput(spec.file) }
        // A name the host does not know is left out here; the jail that asks for it
        // fails at `up` with "unknown user", while the image's other jails still work.
        let (ids, _) = IdentityFiles.select(users: users, groups: groups, hostPasswd: hostPasswd, hostGroup: hostGroup)
        plan.add("/etc/passwd", .generated(ids.passwd), reason: "users of the image's jails")
        plan.add("/etc/group", .generated(ids.group), reason: "groups of the image's jails")

        let result: ClosureResult
        do {
            result = try closure.closure(of: spec.binaries)
        } catch {
            throw JailError(.image, "image \(spec.name): \(error)")
        }
        if !result.missing.isEmpty {
            let list = result.missing.map { "\($0.needer) needs \($0.soname)" }.joined(separator: ", ")
            throw JailError(.image, "image \(spec.name): libraries not found: \(list)")
        }
        for e in result.entries { add(e, to: &plan, reason: result.reasons[e.path] ?? "binary") }

        var chain = SymlinkChain()
        for pattern in spec.files {
            for path in try Self.expand(pattern) {
                do {
                    for e in try chain.entries(for: path) { add(e, to: &plan, reason: "files: \(pattern)") }
                } catch {
                    throw JailError(.image, "image \(spec.name): files: \(error)")
                }
                if FS.isDirectory(path) { try addTree(Self.canonical(path), to: &plan, reason: "files: \(pattern)") }
            }
        }
        for d in spec.directories { plan.add(d, .directory, reason: "directories") }
        for rule in rules {
            do {
                try rule.apply(to: &plan, context: RuleContext(spec: spec, closure: closure, ruleName: rule.name))
            } catch {
                throw JailError(.image, "image \(spec.name): \(error)")
            }
        }
        return plan
    }

    private func add(_ e: FSEntry, to plan: inout ImagePlan, reason: String) {
        switch e {
        case .file(let p): plan.add(p, .file(source: p), reason: reason)
        case .symlink(let p, let t): plan.add(p, .symlink(target: t), reason: reason)
        }
    }

    /// A directory named in `files`, copied with everything below it; symlinks inside
    /// stay symlinks and are not followed.
    private func addTree(_ dir: String, to plan: inout ImagePlan, reason: String) throws {
        plan.add(dir, .directory, reason: reason)
        for name in try FS.list(dir) {
            let p = dir + "/" + name
            var st = stat()
            guard lstat(p, &st) == 0 else { throw SystemError("lstat \(p)") }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: try addTree(p, to: &plan, reason: reason)
            case S_IFREG: plan.add(p, .file(source: p), reason: reason)
            case S_IFLNK:
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(p, &buf, buf.count - 1)
                guard n >= 0 else { throw SystemError("readlink \(p)") }
                let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                plan.add(p, .symlink(target: target), reason: reason)
            default:
                // Sockets, fifos and device nodes never go into an image.
                continue
            }
        }
    }

    static func canonical(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    /// Expands a glob; a plain path is returned as it is if it exists.
    static func expand(_ pattern: String) throws -> [String] {
        if !pattern.contains(where: { "*?[".contains($0) }) {
            guard FS.exists(pattern) else { throw JailError(.image, "files: \(pattern) does not exist") }
            return [pattern]
        }
        var g = glob_t()
        defer { globfree(&g) }
        let rc = glob(pattern, 0, nil, &g)
        if rc == GLOB_NOMATCH { return [] }
        guard rc == 0 else { throw JailError(.image, "files: glob \(pattern) failed") }
        var out: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
        }
        return out
    }
}
