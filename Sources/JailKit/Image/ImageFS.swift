#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

/// Looks at paths inside a built image the way the jail will see them: resolved with
/// openat2(RESOLVE_IN_ROOT), so no symlink in the image can point the check at the host.
enum ImageFS {
    enum Node: Equatable {
        case directory, file, absent
        case symlink(at: String)
        case other
    }

    static func isExecutable(_ path: String, imageRoot: String) -> Bool {
        let rootFd = open(imageRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFd >= 0 else { return false }
        defer { close(rootFd) }
        let fd = jl_open_in_root(rootFd, path, oPath, 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return (st.st_mode & S_IFMT) == S_IFREG && (st.st_mode & 0o111) != 0
    }

    /// What is at `path` in the image, refusing to pass through symlinks: a mount
    /// target must be reached without one.
    static func lookup(_ path: String, imageRoot: String) -> Node {
        let rootFd = open(imageRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFd >= 0 else { return .absent }
        defer { close(rootFd) }
        let parts = path.split(separator: "/")
        var prefix = ""
        for (i, part) in parts.enumerated() {
            prefix += "/" + part
            let fd = jl_open_in_root(rootFd, prefix, oPath | O_NOFOLLOW, 1)
            if fd == -ENOENT { return .absent }
            if fd == -ELOOP { return .symlink(at: prefix) }
            guard fd >= 0 else { return .other }
            var st = stat()
            let ok = fstat(fd, &st) == 0
            close(fd)
            guard ok else { return .other }
            let type = st.st_mode & S_IFMT
            if type == S_IFLNK { return .symlink(at: prefix) }
            if i == parts.count - 1 {
                return type == S_IFDIR ? .directory : (type == S_IFREG ? .file : .other)
            }
        }
        return .directory
    }
}

/// O_PATH of <fcntl.h> (Linux, all architectures jailctl supports); Glibc's module
/// does not export it.
let oPath: Int32 = 0o10000000
