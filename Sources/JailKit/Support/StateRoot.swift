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
