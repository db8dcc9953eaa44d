#if canImport(Glibc)
import Glibc
#endif

/// `packages = [...]`: what dpkg says each package installed on this host, filtered to
/// what runs (DpkgDatabase.isRuntimePath), every ELF object with its closure.
public struct PackagesRule: ImageRule {
    public let name = "packages"
    let directory: String

    public init(dpkgDirectory: String = DpkgDatabase.defaultDirectory) { directory = dpkgDirectory }

    public func apply(to plan: inout ImagePlan, context: RuleContext) throws {
        guard !context.spec.packages.isEmpty else { return }
        let db = try DpkgDatabase(directory: directory)
        let extras = Set(context.spec.packageExtras)
        for spec in context.spec.packages {
            guard case .installed(let package) = db.lookup(spec) else {
                throw JailError(.image, "packages: \(spec) is not installed on this host")
            }
            let (list, paths) = try db.files(of: package)
            plan.noteInput(list)
            var elves: [String] = []
            var skipped = 0
            for path in paths {
                var st = stat()
                // Listed but gone (a conffile the admin deleted, a diverted file): the
                // host runs without it, so does the image.
                guard lstat(path, &st) == 0 else { continue }
                let type = st.st_mode & S_IFMT
                // A listed directory that is a symlink on this host (/lib on merged /usr)
                // is a directory all the same: its files are listed one by one.
                if type == S_IFDIR || (type == S_IFLNK && FS.isDirectory(path)) {
                    // Empty directories matter only where programs expect them to exist
                    // (sshd_config.d, php's sessions); the rest appear as parents.
                    if path.hasPrefix("/etc/") || path.hasPrefix("/var/") {
                        if DpkgDatabase.isRuntimePath(path, extras: extras) || path.hasPrefix("/var/") {
                            plan.add(path, .directory, reason: context.reason(spec))
                        }
                    }
                    continue
                }
                guard DpkgDatabase.isRuntimePath(path, extras: extras) else {
                    skipped += 1
                    continue
                }
                if type == S_IFREG, RuleContext.isELF(path), (try? ELFFile(path: path)) != nil {
                    elves.append(path)
                } else {
                    try context.addPath(path, spec, to: &plan)
                }
            }
            if skipped > 0 { plan.note("packages: \(spec): \(skipped) files left out (docs, man pages, locales, init scripts)") }
            try addObjects(elves, package: spec, to: &plan, context: context)
        }
    }

    /// A package may ship plugins whose libraries come from packages that are not
    /// installed (Recommends, Suggests); those plugins cannot load on the host either,
    /// so they are left out with a note rather than failing the image.
    private func addObjects(_ paths: [String], package: String, to plan: inout ImagePlan, context: RuleContext) throws {
        let result: ClosureResult
        do {
            result = try context.closure.closure(of: paths)
        } catch {
            throw JailError(.image, "packages: \(package): \(error)")
        }
        let broken = Set(result.missingByInput.keys)
        for p in paths.filter(broken.contains) {
            let names = (result.missingByInput[p] ?? []).map(\.soname).joined(separator: ", ")
            plan.note("packages: \(package): \(p) left out, its libraries are not on this host: \(names)")
        }
        try context.addELF(paths.filter { !broken.contains($0) }, package, to: &plan)
    }
}

/// `dlopen = [paths or globs]`: libraries a program loads at run time, with closures.
public struct DlopenRule: ImageRule {
    public let name = "dlopen"

    public init() {}

    public func apply(to plan: inout ImagePlan, context: RuleContext) throws {
        for pattern in context.spec.dlopen {
            let paths = RuleContext.glob(pattern)
            if paths.isEmpty { throw JailError(.image, "dlopen: \(pattern) matches nothing on this host") }
            for p in paths {
                var chain = SymlinkChain()
                if let entries = try? chain.entries(for: p) {
                    for e in entries { RuleContext.add(e, to: &plan, reason: context.reason(pattern)) }
                }
            }
            try context.addELF(paths.map(ImageBuilder.canonical), pattern, to: &plan)
        }
    }
}
