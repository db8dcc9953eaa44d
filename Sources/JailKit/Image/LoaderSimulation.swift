#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// glibc 2.36's `_dl_map_object` / `_dl_map_object_deps`, replayed over parsed files.
/// One instance serves a whole batch: parsed objects and directory probes are memoized,
/// the per-executable state (what is loaded, who loaded whom) is rebuilt for each input
/// because RPATH inheritance and $ORIGIN depend on it.
struct LoaderSimulation {
    struct Outcome {
        var loaded: [(path: String, reason: String)] = []
        var resolved: [String: String] = [:]
        var missing: [ClosureResult.Missing] = []
    }

    /// A link_map: `names` are l_name plus every name it was requested under (l_libname).
    private struct LinkMap {
        var name: String
        var names: Set<String>
        var elf: ELFFile
        var loader: Int?
        /// nil when unknown, which makes the loader drop path elements using $ORIGIN.
        var origin: String?
    }

    let config: LinkerConfig
    private var objects: [String: Result<ELFFile, ELFFile.Error>?] = [:]
    private var directories: [String: Bool] = [:]

    init(config: LinkerConfig) {
        self.config = config
    }

    /// nil when nothing exists at `path`; a failure when it exists but is no usable ELF.
    mutating func object(at path: String) -> Result<ELFFile, ELFFile.Error>? {
        if let known = objects[path] { return known }
        let parsed: Result<ELFFile, ELFFile.Error>?
        do {
            parsed = .success(try ELFFile(path: config.hostPath(path)))
        } catch .unreadable(_, let code) where code == ENOENT || code == ENOTDIR {
            parsed = nil
        } catch {
            parsed = .failure(error)
        }
        objects[path] = parsed
        return parsed
    }

    mutating func load(main path: String, _ elf: ELFFile) -> Outcome {
        var out = Outcome()
        guard elf.isDynamic else { return out }
        var maps = [LinkMap(name: path, names: [path], elf: elf, loader: nil, origin: Self.directory(of: path))]

        // ld.so is mapped before any dependency, under the PT_INTERP string (ldd uses the
        // machine's standard one for a library); a DT_NEEDED of its soname resolves to it.
        // ldd lists it only when something needs it, but an executable always needs it.
        let interp = elf.interpreter ?? config.defaultInterpreter(for: elf.machine)
        var rtldIndex: Int?
        if case .success(let rtld)? = object(at: interp) {
            var names: Set = [interp]
            if let soname = rtld.soname { names.insert(soname) }
            maps.append(LinkMap(name: interp, names: names, elf: rtld, loader: nil, origin: Self.directory(of: interp)))
            rtldIndex = maps.count - 1
        } else if elf.interpreter != nil {
            out.missing.append(.init(needer: path, soname: interp))
        }
        if elf.interpreter != nil { out.loaded.append((interp, "interpreter of \(path)")) }

        // Indexes over `maps` for the two ways glibc finds an already loaded object: by any
        // of its names or its soname (_dl_name_match_p), and by inode. The first object
        // registered under a key keeps it, as the loader's list walk finds it first.
        var byName: [String: Int] = [:]
        var byFile: [ELFFile.FileID: Int] = [:]
        func register(_ index: Int) {
            for name in maps[index].names where byName[name] == nil { byName[name] = index }
            if let soname = maps[index].elf.soname, byName[soname] == nil { byName[soname] = index }
            if byFile[maps[index].elf.fileID] == nil { byFile[maps[index].elf.fileID] = index }
        }
        for index in maps.indices { register(index) }

        var queue = [0]
        var queued: Set = [0]
        var next = 0
        while next < queue.count {
            let current = queue[next]
            next += 1
            for name in maps[current].elf.needed {
                let index: Int
                if let known = byName[name] {
                    index = known
                } else if let (found, elf) = find(name, loader: current, maps: maps) {
                    if let same = byFile[elf.fileID] {
                        maps[same].names.insert(name)
                        byName[name] = same
                        index = same
                    } else {
                        maps.append(
                            LinkMap(
                                name: found, names: [found, name], elf: elf, loader: current,
                                origin: Self.directory(of: found)))
                        index = maps.count - 1
                        register(index)
                        out.resolved[name] = found
                        out.loaded.append((found, "needed by \(maps[current].name) as \(name)"))
                    }
                } else {
                    out.missing.append(.init(needer: maps[current].name, soname: name))
                    continue
                }
                if queued.insert(index).inserted { queue.append(index) }
            }
        }
        if let rtldIndex, queued.contains(rtldIndex) {
            out.resolved[interp] = interp
            if elf.interpreter == nil { out.loaded.append((interp, "interpreter needed by \(path)")) }
        }
        return out
    }

    // MARK: search

    private mutating func find(_ name: String, loader: Int, maps: [LinkMap]) -> (String, ELFFile)? {
        let needer = maps[loader]
        let machine = maps[0].elf.machine
        if name.contains("/") {
            guard let path = expand(name, origin: needer.origin, machine: machine) else { return nil }
            return verify(path, machine: machine)
        }
        if needer.elf.runpath == nil {
            // RPATH of the loader, then of whoever loaded it, up to the executable; the
            // executable's own RPATH last if the chain did not already cover it.
            var didMain = false
            var link: Int? = loader
            while let i = link {
                if let rpath = maps[i].elf.rpath {
                    if let hit = search(name, in: rpath, origin: maps[i].origin, machine: machine) { return hit }
                    didMain = didMain || i == 0
                }
                link = maps[i].loader
            }
            if !didMain, loader != 0, let rpath = maps[0].elf.rpath,
                let hit = search(name, in: rpath, origin: maps[0].origin, machine: machine)
            {
                return hit
            }
        }
        if let runpath = needer.elf.runpath,
            let hit = search(name, in: runpath, origin: needer.origin, machine: machine)
        {
            return hit
        }
        let defaults = config.defaultDirectories(for: machine)
        if let cached = config.cacheLookup(name, machine: machine),
            !(needer.elf.noDefaultLibraries && defaults.contains(where: { cached.hasPrefix($0 + "/") })),
            let hit = verify(cached, machine: machine)
        {
            return hit
        }
        guard !needer.elf.noDefaultLibraries else { return nil }
        return searchExpanded(name, in: defaults, machine: machine)
    }

    private mutating func search(_ name: String, in elements: [String], origin: String?, machine: ELFFile.Machine)
        -> (String, ELFFile)?
    {
        var dirs: [String] = []
        for element in elements {
            // An empty element stays empty: the loader then opens the bare name, relative
            // to the working directory. One that expands to nothing is dropped.
            if element.isEmpty {
                dirs.append("")
                continue
            }
            guard let expanded = expand(element, origin: origin, machine: machine), !expanded.isEmpty else { continue }
            dirs.append(expanded)
        }
        return searchExpanded(name, in: dirs, machine: machine)
    }

    private mutating func searchExpanded(_ name: String, in dirs: [String], machine: ELFFile.Machine)
        -> (String, ELFFile)?
    {
        let hwcaps = machine == config.machine ? config.hwcapsSubdirectories : []
        for rawDir in dirs {
            var dir = rawDir
            while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
            let prefix = dir.isEmpty ? "" : (dir == "/" ? "/" : dir + "/")
            for sub in hwcaps {
                let subdir = prefix + "glibc-hwcaps/" + sub
                guard isDirectory(subdir) else { continue }
                if let hit = verify(subdir + "/" + name, machine: machine) { return hit }
            }
            if let hit = verify(prefix + name, machine: machine) { return hit }
        }
        return nil
    }

    /// open_verify: a candidate that is missing, not ELF, or of another machine is skipped
    /// and the search goes on. An ET_EXEC candidate is skipped too (glibc would stop with
    /// "cannot dynamically load executable"; no system library is one).
    private mutating func verify(_ path: String, machine: ELFFile.Machine) -> (String, ELFFile)? {
        guard case .success(let elf)? = object(at: path), elf.machine == machine, elf.type == .sharedObject else {
            return nil
        }
        return (path, elf)
    }

    private mutating func isDirectory(_ path: String) -> Bool {
        if let known = directories[path] { return known }
        var st = stat()
        let exists = stat(config.hostPath(path), &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        directories[path] = exists
        return exists
    }

    // MARK: dynamic string tokens

    /// $ORIGIN/${ORIGIN}, $LIB, $PLATFORM as glibc's is_dst/_dl_dst_substitute read them: a
    /// bare token must not run on into identifier characters; unknown tokens stay literal.
    /// nil when $ORIGIN is needed but unknown.
    func expand(_ s: String, origin: String?, machine: ELFFile.Machine) -> String? {
        guard s.contains("$") else { return s }
        let tokens: [(String, String?)] = [
            ("ORIGIN", origin), ("PLATFORM", config.platformToken(for: machine)), ("LIB", config.libToken(for: machine)),
        ]
        let chars = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        outer: while i < chars.count {
            guard chars[i] == UInt8(ascii: "$") else {
                out.append(chars[i])
                i += 1
                continue
            }
            let curly = i + 1 < chars.count && chars[i + 1] == UInt8(ascii: "{")
            let start = i + (curly ? 2 : 1)
            for (token, value) in tokens {
                let t = Array(token.utf8)
                guard start + t.count <= chars.count, Array(chars[start..<start + t.count]) == t else { continue }
                let after = start + t.count
                if curly {
                    guard after < chars.count, chars[after] == UInt8(ascii: "}") else { continue }
                } else if after < chars.count, Self.isIdentifier(chars[after]) {
                    continue
                }
                guard let value else { return nil }
                out += Array(value.utf8)
                i = after + (curly ? 1 : 0)
                continue outer
            }
            out.append(chars[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isIdentifier(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
    }

    /// The loader's l_origin: the name's directory, unnormalized; "/" for "/x".
    static func directory(of path: String) -> String? {
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
