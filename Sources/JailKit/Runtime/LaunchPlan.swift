#if canImport(Glibc)
import Glibc
#endif

/// The namespaces a jail gets. A jail always gets all of them but user (issue: user
/// namespaces are opt-in per jail); the set is data so tests and benchmarks can vary it.
public struct Namespaces: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    // The CLONE_NEW* values of <linux/sched.h>; Glibc's module does not export them.
    public static let mount = Namespaces(rawValue: 0x0002_0000)
    public static let uts = Namespaces(rawValue: 0x0400_0000)
    public static let ipc = Namespaces(rawValue: 0x0800_0000)
    public static let user = Namespaces(rawValue: 0x1000_0000)
    public static let pid = Namespaces(rawValue: 0x2000_0000)
    public static let net = Namespaces(rawValue: 0x4000_0000)
    /// Unshared by the child after the parent placed it in its cgroup (see jail_launch.c).
    public static let cgroup = Namespaces(rawValue: 0x0200_0000)

    public static let jail: Namespaces = [.mount, .pid, .uts, .ipc, .net, .cgroup]

    var names: [String] {
        let all: [(Namespaces, String)] = [(.user, "user"), (.mount, "mnt"), (.pid, "pid"), (.uts, "uts"), (.ipc, "ipc"), (.net, "net"), (.cgroup, "cgroup")]
        return all.filter { contains($0.0) }.map(\.1)
    }
}

public struct ResourceLimit: Equatable, Sendable {
    public var resource: Int32
    public var name: String
    public var soft: UInt64
    public var hard: UInt64

    public init(_ resource: Int32, _ name: String, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.name = name
        self.soft = soft
        self.hard = hard
    }
}

/// Everything the C launcher needs to start one jail process, computed ahead of time.
/// Nothing here is decided between clone and execve.
public struct LaunchPlan: Sendable {
    public var jail: String
    /// Host path of the new root (a mount point once the first op has run).
    public var root: String
    public var namespaces: Namespaces = .jail
    public var mounts: [MountOp] = []
    public var hostname: String?
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var groups: [UInt32] = []
    public var rlimits: [ResourceLimit] = []
    /// Capability numbers kept; every other one leaves every set.
    public var keepCapabilities: [Int] = []
    public var dropCapabilities = true
    public var noNewPrivileges = true
    /// A seccomp BPF program (struct sock_filter[]), compiled in the parent.
    public var seccompFilter: [UInt8] = []
    public var workdir = "/"
    /// The executable as the jail sees it.
    public var path: String
    public var argv: [String]
    public var environment: [String]
    public var newSession = true
    /// Detached jails: the monitor stamps and rotates the jail's output into this log.
    public var log: LogTarget?
    /// With a user namespace: the host uid and gid that are 0 inside, and how many follow.
    public var idMap: (base: UInt32, size: UInt32)?
    /// Writable volume sources of every jail (`VolumeSources`): below these, volume
    /// sources resolve without symlinks.
    public var writableVolumeRoots: [String] = []

    public init(jail: String, root: String, path: String, argv: [String], environment: [String]) {
        self.jail = jail
        self.root = root
        self.path = path
        self.argv = argv
        self.environment = environment
    }

    /// The plan as text, for `--dry-run` and golden tests.
    public func render() -> String {
        var lines: [String] = []
        lines.append("jail \(jail)")
        lines.append("namespaces \(namespaces.names.joined(separator: " "))")
        lines.append("root \(root)")
        for op in mounts { lines.append("  " + op.describe(root: root)) }
        lines.append("pivot_root \(root)")
        if let m = idMap { lines.append("userns 0-\(m.size - 1) -> host \(m.base)-\(m.base + m.size - 1)") }
        if let h = hostname { lines.append("hostname \(h)") }
        lines.append("uid \(uid) gid \(gid) groups \(groups.map(String.init).joined(separator: ","))")
        for r in rlimits { lines.append("rlimit \(r.name) \(r.soft) \(r.hard)") }
        if dropCapabilities {
            lines.append("capabilities " + (keepCapabilities.isEmpty ? "none" : keepCapabilities.map { Capabilities.name(of: $0) }.joined(separator: ",")))
        }
        lines.append("no_new_privs \(noNewPrivileges)")
        lines.append("seccomp \(seccompFilter.isEmpty ? "none" : "\(seccompFilter.count / 8) instructions")")
        lines.append("workdir \(workdir)")
        lines.append("exec \(path) " + argv.map(shellQuote).joined(separator: " "))
        for e in environment { lines.append("env \(e)") }
        return lines.joined(separator: "\n") + "\n"
    }
}

func shellQuote(_ s: String) -> String {
    let safe = s.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }
    if safe && !s.isEmpty { return s }
    return "'" + s.replacingAll("'", with: "'\\''") + "'"
}

extension String {
    func replacingAll(_ what: String, with: String) -> String {
        split(separator: Substring(what), omittingEmptySubsequences: false).joined(separator: with)
    }
}

/// Where a detached jail's output goes: a file in a directory, rotated by size.
public struct LogTarget: Sendable, Equatable {
    public var directory: String
    public var name: String
    public var maxBytes: UInt64
    public var keep: Int
    /// Where the monitor binds the jail's /dev/log socket (see MountPlanner.Options.syslog).
    public var syslogSocket: String?

    public init(directory: String, name: String, maxBytes: UInt64 = 10 << 20, keep: Int = 5) {
        self.directory = directory
        self.name = name
        self.maxBytes = maxBytes
        self.keep = keep
    }
}
