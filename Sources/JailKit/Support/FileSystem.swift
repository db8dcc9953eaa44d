#if canImport(Glibc)
import Glibc
#endif

/// Small, explicit file helpers on raw system calls. Errors name the path.
enum FS {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func mkdirs(_ path: String, mode: mode_t = 0o755) throws {
        var built = ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            built += "/" + part
            if mkdir(built, mode) < 0 && errno != EEXIST {
                throw SystemError("mkdir \(built)")
            }
        }
    }

    static func readFile(_ path: String, limit: Int = 16 << 20) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        defer { close(fd) }
        return try readAll(fd, path: path, limit: limit)
    }

    static func readAll(_ fd: Int32, path: String, limit: Int = 16 << 20) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read \(path)")
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > limit { throw SystemError("read \(path)", errno: EFBIG) }
        }
        return out
    }

    static func readText(_ path: String) throws -> String {
        String(decoding: try readFile(path), as: UTF8.self)
    }

    /// Writes through a temporary file renamed into place, so readers never see half a file.
    /// The temporary name is the writer's own: two processes writing one path at once
    /// (two `up`s recording a link hint) each rename a whole file, and one wins.
    static func writeAtomically(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try writeFile(tmp, text, flags: O_TRUNC, mode: mode)
        try check("rename \(tmp)", rename(tmp, path))
    }

    /// Rewrites a file keeping its inode: a bind mount of it shows the new text.
    static func writeInPlace(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try writeFile(path, text, flags: O_TRUNC, mode: mode)
    }

    private static func writeFile(_ path: String, _ text: String, flags: Int32, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | flags, mode)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        var bytes = Array(text.utf8)
        let ok = bytes.withUnsafeMutableBytes { writeAll(fd, $0.baseAddress, $0.count) }
        let e = errno
        close(fd)
        guard ok else { throw SystemError("write \(path)", errno: e) }
    }

    /// A file that exists only as the returned descriptor (created in /tmp and unlinked
    /// at once), holding `text`, positioned at its start: a child's stdin that can never
    /// block us the way a full pipe would. Close-on-exec; hand it on with dup2.
    static func unlinkedFile(containing text: String) throws -> Int32 {
        var template = Array("/tmp/jailctl-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { p in p.baseAddress.map { mkstemp($0) } ?? -1 }
        if fd < 0 { throw SystemError("mkstemp") }
        template.withUnsafeBufferPointer { p in if let b = p.baseAddress { unlink(b) } }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var bytes = Array(text.utf8)
        guard bytes.withUnsafeMutableBytes({ writeAll(fd, $0.baseAddress, $0.count) }) else {
            let e = errno
            close(fd)
            throw SystemError("write a temporary file", errno: e)
        }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    /// A pipe whose ends are both close-on-exec (a fork keeps them; an exec does not).
    static func pipeCloexec() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SystemError("pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    static func writeAll(_ fd: Int32, _ p: UnsafeRawPointer?, _ count: Int) -> Bool {
        guard var p = p else { return count == 0 }
        var left = count
        while left > 0 {
            let n = write(fd, p, left)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            p += n
            left -= n
        }
        return true
    }

    /// Removes a tree without following symlinks out of it. Missing is fine.
    static func removeTree(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw SystemError("lstat \(path)")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            // A read-only image directory must be made writable before its entries go.
            if (st.st_mode & S_IWUSR) == 0 { chmod(path, st.st_mode | S_IWUSR) }
            for name in try list(path) { try removeTree(path + "/" + name) }
            try check("rmdir \(path)", rmdir(path))
        } else {
            try check("unlink \(path)", unlink(path))
        }
    }

    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw SystemError("opendir \(path)") }
        defer { closedir(dir) }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
