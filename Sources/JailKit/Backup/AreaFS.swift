#if canImport(Glibc)
import Glibc
#endif

/// File operations of the trusted side inside the backup area's `hosts/` tree, which the
/// jail has mounted read-write: the jail's root (sshd, should it be broken into) can put a
/// symlink anywhere there, and the backup user can inside `current/` and `log/`. So
/// nothing here resolves a path: every step is an `openat` with `O_NOFOLLOW` from a
/// directory descriptor, ownership and modes are set through descriptors, and files are
/// replaced by `renameat` within one directory. A symlink where a directory or file is
/// expected is an error (or, for removals, is removed itself), never followed.
enum AreaFS {
    /// The directory `base/c1/c2/...`, each component opened without following a link.
    /// `base` is trusted (the area itself, root's). `create`: missing components are made
    /// with `owner` and `mode`; existing ones are left as they are.
    static func openDir(_ base: String, _ components: [String], create: (owner: UInt32, mode: mode_t)? = nil) throws -> Int32 {
        var fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(base)") }
        var path = base
        for c in components {
            guard !c.isEmpty, !c.contains("/"), c != ".", c != ".." else {
                close(fd)
                throw JailError(.state, "\(path): \"\(c)\" is not a single name")
            }
            path += "/" + c
            if let create, mkdirat(fd, c, create.mode) == 0 {
                let made = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if made < 0 { let e = errno; close(fd); throw SystemError("open \(path)", errno: e) }
                if fchown(made, create.owner, create.owner) < 0 || fchmod(made, create.mode) < 0 {
                    let e = errno; close(made); close(fd)
                    throw SystemError("chown/chmod \(path)", errno: e)
                }
                close(fd)
                fd = made
                continue
            }
            let next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let e = errno
            close(fd)
            // ELOOP/ENOTDIR: a symlink or a file where a directory belongs.
            guard next >= 0 else { throw SystemError("open \(path) (not followed if a link)", errno: e) }
            fd = next
        }
        return fd
    }

    /// Makes `name` in `dir` a directory owned by `owner` with `mode`, whether it existed
    /// or not; refuses a symlink or a file there.
    static func ensureDir(_ dir: Int32, _ name: String, owner: UInt32, mode: mode_t, path: String) throws {
        if mkdirat(dir, name, mode) < 0 && errno != EEXIST { throw SystemError("mkdir \(path)") }
        let fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path) (not followed if a link)") }
        defer { close(fd) }
        try check("chown \(path)", fchown(fd, owner, owner))
        try check("chmod \(path)", fchmod(fd, mode))
    }

    /// Replaces `name` in `dir` with `text`, owned and moded through the descriptor before
    /// it gets its name.
    static func writeFile(_ dir: Int32, _ name: String, _ text: String, owner: UInt32, mode: mode_t, path: String) throws {
        let tmp = "." + name + ".jailctl-tmp"
        if unlinkat(dir, tmp, 0) < 0 && errno != ENOENT { throw SystemError("unlink \(path).tmp") }
        let fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("create \(path).tmp") }
        var bytes = Array(text.utf8)
        let ok = bytes.withUnsafeMutableBytes { FS.writeAll(fd, $0.baseAddress, $0.count) }
            && fchown(fd, owner, owner) == 0 && fchmod(fd, mode) == 0
        let e = errno
        close(fd)
        guard ok else {
            unlinkat(dir, tmp, 0)
            throw SystemError("write \(path)", errno: e)
        }
        try check("rename \(path)", renameat(dir, tmp, dir, name))
    }

    /// Removes `name` from `dir`, a tree without following any link in it.
    static func remove(_ dir: Int32, _ name: String, path: String) throws {
        if unlinkat(dir, name, 0) == 0 || errno == ENOENT { return }
        guard errno == EISDIR else { throw SystemError("unlink \(path)") }
        let fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        // Make it writable for its entries to go (a client may have pushed a 0555 tree).
        fchmod(fd, 0o700)
        try forEachEntry(fd, path: path) { entry in try remove(fd, entry, path: path + "/" + entry) }
        close(fd)
        try check("rmdir \(path)", unlinkat(dir, name, AT_REMOVEDIR))
    }

    /// Calls `body` with each name in the directory `fd` (which stays the caller's).
    static func forEachEntry(_ fd: Int32, path: String, _ body: (String) throws -> Void) throws {
        let dup = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0, let d = fdopendir(dup) else {
            if dup >= 0 { close(dup) }
            throw SystemError("opendir \(path)")
        }
        defer { closedir(d) }
        rewinddir(d)
        var names: [String] = []
        while let ent = readdir(d) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        for n in names { try body(n) }
    }

    /// Sizes of regular files, their count, and blocks in use, each inode once, under the
    /// directory `fd`; `seen` carries inodes across several trees.
    static func usage(_ fd: Int32, seen: inout Set<[UInt64]>) -> (bytes: Int64, files: Int, disk: Int64) {
        var total: (bytes: Int64, files: Int, disk: Int64) = (0, 0, 0)
        var st = stat()
        guard fstat(fd, &st) == 0, seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else { return total }
        total.disk += Int64(st.st_blocks) * 512
        do {
            try forEachEntry(fd, path: "") { name in
                var e = stat()
                guard fstatat(fd, name, &e, AT_SYMLINK_NOFOLLOW) == 0 else { return }
                if (e.st_mode & S_IFMT) == S_IFDIR {
                    let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard sub >= 0 else { return }
                    defer { close(sub) }
                    let u = usage(sub, seen: &seen)
                    total.bytes += u.bytes
                    total.files += u.files
                    total.disk += u.disk
                } else if seen.insert([UInt64(e.st_dev), UInt64(e.st_ino)]).inserted {
                    total.disk += Int64(e.st_blocks) * 512
                    if (e.st_mode & S_IFMT) == S_IFREG {
                        total.bytes += Int64(e.st_size)
                        total.files += 1
                    }
                }
            }
        } catch {
            // An unreadable directory counts with what was seen so far: the figures are a
            // report (quota uses them, and then errs towards accepting pushes).
            return total
        }
        return total
    }

    /// Moves every entry under the directory `fd` owned by an id of the range starting at
    /// `from` to the same offset in the range starting at `to` (a backup jail whose uid
    /// range changed after a `down --purge`). Links are re-owned themselves, never followed.
    static func shiftOwners(_ fd: Int32, from: UInt32, to: UInt32, size: UInt32, path: String) throws {
        func shifted(_ id: UInt32) -> UInt32 { id >= from && id - from < size ? to + (id - from) : id }
        var st = stat()
        try check("stat \(path)", fstat(fd, &st))
        try check("chown \(path)", fchown(fd, shifted(st.st_uid), shifted(st.st_gid)))
        try forEachEntry(fd, path: path) { name in
            var e = stat()
            guard fstatat(fd, name, &e, AT_SYMLINK_NOFOLLOW) == 0 else { return }
            if (e.st_mode & S_IFMT) == S_IFDIR {
                let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { throw SystemError("open \(path)/\(name)") }
                defer { close(sub) }
                try shiftOwners(sub, from: from, to: to, size: size, path: path + "/" + name)
            } else if shifted(e.st_uid) != e.st_uid || shifted(e.st_gid) != e.st_gid {
                // Owner changes clear setuid bits; the area holds none (--fake-super).
                try check("chown \(path)/\(name)", fchownat(fd, name, shifted(e.st_uid), shifted(e.st_gid), AT_SYMLINK_NOFOLLOW))
            }
        }
    }
}
