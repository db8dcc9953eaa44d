#if canImport(Glibc)
import Glibc
#endif

/// One built-in reason for a file to be in an image (NSS modules, PAM modules, PHP
/// extensions, ...). A rule reads the host and the plan so far and adds entries; it
/// writes nothing. ImageBuilder runs the rules in order, so a rule sees what earlier
/// rules added (PAM modules are only looked for once packages brought in sshd).
public protocol ImageRule: Sendable {
    /// Short and stable: it is the reason `build --explain` prints.
    var name: String { get }
    func apply(to plan: inout ImagePlan, context: RuleContext) throws
}

/// What a rule may use: the spec, the loader model, and helpers that add paths the way
/// the builder does (symlink chains kept, ELF objects with their closure), each entry
/// tagged with the rule's name.
public struct RuleContext: Sendable {
    public let spec: ImageSpec
    public let closure: ELFClosure
    public let ruleName: String

    public init(spec: ImageSpec, closure: ELFClosure, ruleName: String) {
        self.spec = spec
        self.closure = closure
        self.ruleName = ruleName
    }

    public func reason(_ detail: String) -> String { detail.isEmpty ? ruleName : "\(ruleName): \(detail)" }

    /// A host path with every symlink on its way; a directory is copied with its tree.
    public func addPath(_ path: String, _ detail: String, to plan: inout ImagePlan) throws {
        var chain = SymlinkChain()
        let entries: [FSEntry]
        do {
            entries = try chain.entries(for: path)
        } catch {
            throw JailError(.image, "\(ruleName): \(error)")
        }
        if case .file(let end)? = entries.last, !Self.isRegularFile(end) {
            // A link to /dev/null (a masked unit) or a socket: nothing to copy.
            plan.note("\(ruleName): \(path) leads to \(end), not a regular file; left out")
            return
        }
        for e in entries { Self.add(e, to: &plan, reason: reason(detail)) }
        if FS.isDirectory(path) { try addTree(ImageBuilder.canonical(path), detail, to: &plan) }
    }

    /// Like addPath for a path that may legitimately be absent (optional config).
    public func addIfPresent(_ path: String, _ detail: String, to plan: inout ImagePlan) throws {
        if FS.exists(path) { try addPath(path, detail, to: &plan) }
    }

    /// ELF objects (loaded at run time by dlopen) and everything the loader would open
    /// for them. A dependency that cannot be found is an error: the module would fail to
    /// load inside the jail exactly as it would on the host.
    public func addELF(_ paths: [String], _ detail: String, to plan: inout ImagePlan) throws {
        guard !paths.isEmpty else { return }
        let result: ClosureResult
        do {
            result = try closure.closure(of: paths)
        } catch {
            throw JailError(.image, "\(ruleName): \(error)")
        }
        if !result.missing.isEmpty {
            let list = result.missing.map { "\($0.needer) needs \($0.soname)" }.joined(separator: ", ")
            throw JailError(.image, "\(ruleName): libraries not found: \(list)")
        }
        for e in result.entries {
            let why = result.reasons[e.path] ?? "requested"
            Self.add(e, to: &plan, reason: reason(why == "requested" ? detail : "\(detail) (\(why))"))
        }
    }

    /// The directory of the libc the image's programs load (NSS, gconv and PAM modules
    /// live next to it or below it), or nil for an image without a dynamic libc.
    public func libcDirectory(in plan: ImagePlan) -> String? {
        for e in plan.entries {
            if case .file = e.kind, e.path.hasSuffix("/libc.so.6") {
                return String(e.path.dropLast("/libc.so.6".count))
            }
        }
        return nil
    }

    /// Real files of the plan (not symlinks), as (image path, host source).
    public func files(in plan: ImagePlan) -> [(path: String, source: String)] {
        plan.entries.compactMap { e in
            if case .file(let s) = e.kind { return (e.path, s) }
            return nil
        }
    }

    static func add(_ e: FSEntry, to plan: inout ImagePlan, reason: String) {
        switch e {
        case .file(let p): plan.add(p, .file(source: p), reason: reason)
        case .symlink(let p, let t): plan.add(p, .symlink(target: t), reason: reason)
        }
    }

    /// A directory and everything below it; symlinks inside stay symlinks, and their
    /// targets are added too when they are absolute paths on the host (conf.d links).
    func addTree(_ dir: String, _ detail: String, to plan: inout ImagePlan) throws {
        plan.add(dir, .directory, reason: reason(detail))
        for name in try FS.list(dir).sorted() {
            let p = dir + "/" + name
            var st = stat()
            guard lstat(p, &st) == 0 else { throw SystemError("lstat \(p)") }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: try addTree(p, detail, to: &plan)
            case S_IFREG: plan.add(p, .file(source: p), reason: reason(detail))
            case S_IFLNK:
                // The whole chain, so the link resolves inside the image as on the host.
                if let entries = try? SymlinkChain.entries(for: p),
                   !entries.contains(where: { if case .file(let f) = $0 { return !Self.isRegularFile(f) } else { return false } })
                {
                    for e in entries { Self.add(e, to: &plan, reason: reason(detail)) }
                } else if let t = Self.readLink(p) {
                    // A dangling link is copied as it is: it dangles on the host too.
                    plan.add(p, .symlink(target: t), reason: reason(detail))
                }
            default:
                // Sockets, fifos and device nodes never go into an image.
                continue
            }
        }
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buf, buf.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Glob matches (sorted); a pattern without wildcards matches itself if it exists.
    public static func glob(_ pattern: String) -> [String] {
        (try? ImageBuilder.expand(pattern))?.sorted() ?? []
    }

    static func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    static func isELF(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        let n = magic.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4) }
        return n == 4 && magic == [0x7F, 0x45, 0x4C, 0x46]
    }
}
