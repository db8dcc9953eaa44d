#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

/// Opens a jail's volume sources for binding, so that no jail can redirect another
/// jail's (or its own next) volume onto the host.
///
/// A source may lie inside a volume that some jail can write (a read-only subdirectory
/// of a jail's own data, a share of another jail's). That jail can replace any entry
/// there with a symlink between two starts; a bind by path would then follow it anywhere
/// (`/etc`, another tenant). So the path is walked here one component at a time: the
/// host's own symlinks are followed as the sysadmin set them up, but from the first
/// directory that lies in a writable volume on, the rest must resolve beneath it with no
/// symlink at all. The worst a jail can then do is point the source at another place in a
/// volume it can already write. The descriptor is what the parent clones (open_tree) and
/// the jail gets: what was resolved is what is bound.
enum VolumeSources {
    /// O_PATH (not exported by Swift's Glibc module): a handle on the object, no access.
    static let oPath: Int32 = 0o10000000

    /// Normalized paths of every writable volume of every jail in `jails`: those that
    /// could have planted something. Each also by its real path where that differs, so a
    /// host symlink to a volume counts as the volume.
    static func writableRoots(of jails: [JailSpec]) -> [String] {
        var roots: Set<String> = []
        for j in jails {
            for v in j.volumes where !v.readonly {
                roots.insert(normalize(v.source))
                if let r = realPath(v.source) { roots.insert(r) }
            }
        }
        return roots.sorted()
    }

    /// An O_PATH descriptor of `path` (absolute) resolved as above; throws with the path
    /// and the reason (ELOOP: a symlink where a jail could have put it).
    ///
    /// `rootOwned` (idmapped volumes, whose host root-owned files become the jail root's):
    /// every directory on the way to the source must belong to root and be writable by
    /// no one else (a sticky directory excepted), so no other host user can have swapped
    /// the source for a tree of root's. (The source itself may be anyone's: its owner can
    /// rename what is in it, never make root's files.)
    static func open(_ path: String, writableRoots roots: [String], rootOwned: Bool = false) throws -> Int32 {
        try resolve(path, writableRoots: roots, rootOwned: rootOwned)
    }

    static func checkRootOwned(_ fd: Int32, _ path: String, at: String) throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("stat \(at)") }
        let isDir = (st.st_mode & S_IFMT) == S_IFDIR
        let sticky = isDir && (st.st_mode & S_ISVTX) != 0
        if st.st_uid != 0 || ((st.st_mode & 0o022) != 0 && !sticky) {
            throw JailError(.invalidSpec, "idmapped volume source \(path): \(at) is "
                            + (st.st_uid != 0 ? "owned by uid \(st.st_uid)" : "writable by group or others")
                            + "; on an idmapped volume the jail's root owns what the host's root owns, so every directory on the way must be root's and writable by root alone")
        }
    }

    static func resolve(_ path: String, writableRoots roots: [String], rootOwned: Bool) throws -> Int32 {
        var pending = Array(path.split(separator: "/").map(String.init).reversed())
        var real = "/"
        var dir = Glibc.open("/", oPath | O_DIRECTORY | O_CLOEXEC)
        if dir < 0 { throw SystemError("open /") }
        var links = 0
        func within(_ p: String) -> Bool { roots.contains { p == $0 || p.hasPrefix($0 == "/" ? "/" : $0 + "/") } }
        while true {
            if within(real) {
                // From here a jail may have planted anything: beneath, no symlinks.
                let rest = pending.reversed().joined(separator: "/")
                let fd = rest.isEmpty ? dir : jl_open_in_root(dir, rest, oPath, 1)
                if fd != dir { close(dir) }
                if fd < 0 {
                    throw JailError(.invalidSpec, "volume source \(path): \(strerrorString(-fd))"
                                    + (-fd == ELOOP ? " (a symlink inside the writable volume \(real); jailctl does not follow those)" : ""))
                }
                return fd
            }
            guard let c = pending.popLast() else { return dir }
            if c == "." { continue }
            if c == ".." {
                real = parent(real)
                let up = Glibc.open(real, oPath | O_DIRECTORY | O_CLOEXEC)
                if up < 0 { close(dir); throw SystemError("open \(real)") }
                close(dir)
                dir = up
                continue
            }
            let fd = openat(dir, c, oPath | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 {
                let e = errno
                close(dir)
                let at = (real == "/" ? "" : real) + "/" + c
                throw JailError(.invalidSpec, "volume source \(path): " + (at == normalize(path) ? "" : "\(at): ") + strerrorString(e))
            }
            var st = stat()
            if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK {
                links += 1
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(fd, "", &buf, buf.count - 1)
                close(fd)
                if n < 0 || links > 40 {
                    close(dir)
                    throw JailError(.invalidSpec, "volume source \(path): \(n < 0 ? strerrorString(errno) : strerrorString(ELOOP))")
                }
                let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                pending += target.split(separator: "/").map(String.init).reversed()
                if target.hasPrefix("/") {
                    let top = Glibc.open("/", oPath | O_DIRECTORY | O_CLOEXEC)
                    if top < 0 { close(dir); throw SystemError("open /") }
                    close(dir)
                    dir = top
                    real = "/"
                }
                continue
            }
            close(dir)
            dir = fd
            real = real == "/" ? "/" + c : real + "/" + c
            if rootOwned && !pending.isEmpty {
                do { try checkRootOwned(dir, path, at: real) } catch {
                    close(dir)
                    throw error
                }
            }
        }
    }

    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/") where p != "." {
            if p == ".." { _ = parts.popLast() } else { parts.append(p) }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func parent(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/"), i != path.startIndex else { return "/" }
        return String(path[..<i])
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
