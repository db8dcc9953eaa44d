#if canImport(Glibc)
import Glibc
#endif
import Crypto

/// Where one installation of jailctl keeps everything, and the instance name that
/// prefixes whatever the kernel sees (cgroups, later interfaces and nft tables), so two
/// roots on one host never collide.
public struct StateRoot: Sendable {
    public let path: String
    /// Eight characters derived from the root's absolute path: "j" + 7 hex digits.
    public let instance: String

    public static let defaultPath = "/var/lib/jailctl"

    public init(path: String) {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        self.path = p
        let digest = SHA256.hash(data: Array(p.utf8))
        self.instance = "j" + digest.prefix(4).map { hex2($0) }.joined().prefix(7)
    }

    public var database: String { path + "/state.db" }
    public var store: String { path + "/store" }
    public var runDir: String { path + "/run" }
    public var logDir: String { path + "/logs" }
    public var lockDir: String { path + "/locks" }

    public func jailRun(_ jail: String) -> String { runDir + "/" + jail }
    public func jailLog(_ jail: String) -> String { logDir + "/" + jail + ".log" }

    /// A ready /dev for jails (device nodes, pts and shm mount points, the usual
    /// symlinks), bound read-only into each: 4 mount calls at launch instead of a tmpfs
    /// and a bind per device (22). Made on first use; nil where device nodes cannot work
    /// (a state root on a `nodev` filesystem), and jails then get the tmpfs /dev.
    public var devTemplate: String { path + "/dev" }

    /// The template if it exists and is whole (no side effect: dry runs use this).
    public func existingDevTemplate() -> String? {
        var st = stat()
        for dev in MountPlanner.devices {
            var host = stat()
            guard lstat(devTemplate + "/" + dev, &st) == 0, (st.st_mode & S_IFMT) == S_IFCHR, st.st_uid == 0,
                  st.st_mode & 0o7777 == 0o666, stat("/dev/" + dev, &host) == 0, st.st_rdev == host.st_rdev else { return nil }
        }
        guard lstat(devTemplate + "/log", &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        // The source of the masked /proc directories (see MountPlanner): a missing one
        // would make those optional binds skip.
        guard lstat(devTemplate + "/pts", &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return devTemplate
    }

    /// Makes the template when it is missing (built aside, renamed into place).
    public func prepareDevTemplate() -> String? {
        if let t = existingDevTemplate() { return t }
        var fs = statvfs()
        let stNodev: UInt = 4  // ST_NODEV of <sys/statvfs.h>, which Swift's Glibc does not show
        guard statvfs(path, &fs) == 0, fs.f_flag & stNodev == 0 else { return nil }
        let tmp = devTemplate + ".tmp-\(getpid())"
        do {
            try FS.removeTree(tmp)
            try check("mkdir \(tmp)", mkdir(tmp, 0o755))
            try check("chmod \(tmp)", chmod(tmp, 0o755))
            for dev in MountPlanner.devices {
                var host = stat()
                try check("stat /dev/\(dev)", stat("/dev/" + dev, &host))
                try check("mknod \(dev)", mknod(tmp + "/" + dev, S_IFCHR | 0o666, host.st_rdev))
                try check("chmod \(dev)", chmod(tmp + "/" + dev, 0o666))
            }
            // The mount point of the jail's syslog socket.
            let log = open(tmp + "/log", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o666)
            if log < 0 { throw SystemError("create log") }
            close(log)
            try check("mkdir pts", mkdir(tmp + "/pts", 0o755))
            try check("mkdir shm", mkdir(tmp + "/shm", 0o755))
            for (name, target) in [("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                                   ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
                try check("symlink \(name)", symlink(target, tmp + "/" + name))
            }
            // A template in use is bound into running jails: never removed, only moved
            // aside when broken; a rename onto a whole one fails (another `up` won).
            if FS.exists(devTemplate) && existingDevTemplate() == nil {
                try check("move the broken /dev template aside",
                          rename(devTemplate, devTemplate + ".broken-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"))
            }
            if rename(tmp, devTemplate) != 0 { try FS.removeTree(tmp) }
            return existingDevTemplate()
        } catch {
            // No template: jails get the tmpfs /dev, which needs none; what is left of
            // the attempt goes if it can (the next attempt removes it first anyway).
            try? FS.removeTree(tmp)
            return nil
        }
    }

    /// Creates the layout with root-only permissions where secrets or locks live.
    public func prepare() throws {
        try FS.mkdirs(path, mode: 0o711)
        for (dir, mode) in [(store, mode_t(0o755)), (runDir, 0o711), (logDir, 0o750), (lockDir, 0o700)] {
            if mkdir(dir, mode) < 0 && errno != EEXIST { throw SystemError("mkdir \(dir)") }
            // Also for a layout made by an older version with other modes.
            try check("chmod \(dir)", chmod(dir, mode))
        }
    }
}

func hex2(_ b: UInt8) -> String {
    let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}
