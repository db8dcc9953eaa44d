#if canImport(Glibc)
import Glibc
#endif

/// One line of /proc/self/cgroup: "4:memory:/process_api/x", "1:cpu,cpuacct:/",
/// "0::/user.slice/…" (v2).
struct ProcCgroupEntry: Sendable, Equatable {
    var hierarchy: Int
    /// Controllers of a v1 hierarchy (named hierarchies keep their "name=…"); empty for v2.
    var controllers: [String]
    var path: String

    static func parse(_ text: String) -> [ProcCgroupEntry] {
        text.split(separator: "\n").compactMap { line in
            // The path may itself contain ':', so split at the first two only.
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3, let h = Int(f[0]) else { return nil }
            let ctl = f[1].split(separator: ",").map(String.init)
            return ProcCgroupEntry(hierarchy: h, controllers: ctl, path: String(f[2]))
        }
    }
}

/// A cgroup or cgroup2 mount from /proc/self/mountinfo.
struct CgroupMount: Sendable, Equatable {
    var fstype: String
    /// The cgroup (relative to the hierarchy's root) mounted here; "/" unless the mount
    /// is a bind of a subtree, as in containers.
    var root: String
    var mountPoint: String
    var superOptions: Set<String>

    /// Fields: id parent maj:min root mountpoint options [optional…] - fstype source super.
    static func parse(_ text: String) -> [CgroupMount] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let dash = f.firstIndex(of: "-"), dash >= 6, dash + 3 < f.count else { return nil }
            let fstype = f[dash + 1]
            guard fstype == "cgroup" || fstype == "cgroup2" else { return nil }
            return CgroupMount(fstype: fstype, root: unescape(f[3]), mountPoint: unescape(f[4]),
                               superOptions: Set(f[dash + 3].split(separator: ",").map(String.init)))
        }
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo octal.
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x5c, i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The directory of cgroup `path` (as /proc/self/cgroup names it) under this mount,
    /// or nil when the cgroup is outside the mounted subtree.
    func directory(of path: String) -> String? {
        let base = mountPoint == "/" ? "" : mountPoint
        if root == "/" { return path == "/" ? mountPoint : base + path }
        if path == root { return mountPoint }
        if path.hasPrefix(root + "/") { return base + String(path.dropFirst(root.count)) }
        return nil
    }
}

/// The cgroup driver of this host: v2 when a unified hierarchy carries the controllers,
/// v1 when per-controller hierarchies do (legacy or hybrid hosts). One interface: plan,
/// then a `JailCgroup` handle to create, join, read, kill and remove.
public enum CgroupDriver: Sendable, Equatable {
    case v2(CgroupV2Driver)
    case v1(CgroupV1Driver)

    /// "v2 below /sys/fs/cgroup/..." or "v1 (memory, pids, ...)", for people.
    public var summary: String {
        switch self {
        case .v2: return "v2 (unified)"
        case .v1(let d): return "v1 (" + d.hierarchies.flatMap(\.controllers).joined(separator: ", ") + ")"
        }
    }

    /// The controllers jailctl uses on v1, in planning order; freezer only to stop forks
    /// while killing, cpuacct only for usage.
    static let v1Controllers = ["memory", "pids", "cpu", "cpuacct", "freezer"]
    /// Those that limits may need; any of them mounted as v1 makes the host "v1" for us.
    static let limitControllers: Set<String> = ["memory", "pids", "cpu"]

    public var version: CgroupVersion {
        switch self {
        case .v1: return .v1
        case .v2: return .v2
        }
    }

    /// Pure detection from the texts of /proc/self/cgroup and /proc/self/mountinfo. Mount
    /// points come from mountinfo, never assumed to be /sys/fs/cgroup. On a hybrid host
    /// (v1 controllers plus an empty cgroup2 at …/unified) the v1 hierarchies win, since a
    /// controller bound to v1 cannot be enabled on v2.
    public static func detect(procSelfCgroup: String, mountinfo: String) throws -> CgroupDriver {
        let entries = ProcCgroupEntry.parse(procSelfCgroup)
        let mounts = CgroupMount.parse(mountinfo)
        let v1Mounts = mounts.filter { $0.fstype == "cgroup" }
        let v1HasLimits = v1Mounts.contains { !$0.superOptions.isDisjoint(with: limitControllers) }
        if v1HasLimits {
            var hierarchies: [CgroupV1Driver.Hierarchy] = []
            for controller in v1Controllers {
                if hierarchies.contains(where: { $0.controllers.contains(controller) }) { continue }
                guard let entry = entries.first(where: { $0.hierarchy > 0 && $0.controllers.contains(controller) }) else { continue }
                // Several mounts of one hierarchy (binds) are fine: take the first that
                // shows our own cgroup.
                let candidates = v1Mounts.filter { m in entry.controllers.allSatisfy { m.superOptions.contains($0) } }
                guard let (mount, dir) = candidates.lazy.compactMap({ m in m.directory(of: entry.path).map { (m, $0) } }).first else {
                    throw JailError(.system, "cgroup v1: our own \(controller) cgroup \(entry.path) is not visible under any mount of that hierarchy")
                }
                hierarchies.append(.init(controllers: entry.controllers.sorted(), mountPoint: mount.mountPoint, own: dir))
            }
            return .v1(CgroupV1Driver(hierarchies: hierarchies))
        }
        guard let unified = entries.first(where: { $0.hierarchy == 0 && $0.controllers.isEmpty }) else {
            throw JailError(.system, "cgroup: /proc/self/cgroup has no v1 memory, pids or cpu hierarchy and no v2 (0::) entry")
        }
        let v2Mounts = mounts.filter { $0.fstype == "cgroup2" }
        guard let (mount, dir) = v2Mounts.lazy.compactMap({ m in m.directory(of: unified.path).map { (m, $0) } }).first else {
            throw JailError(.system, "cgroup v2: our own cgroup \(unified.path) is not visible under any cgroup2 mount (mounted: \(v2Mounts.map(\.mountPoint).joined(separator: ", ")))")
        }
        return .v2(CgroupV2Driver(mountPoint: mount.mountPoint, own: dir, ownIsRoot: dir == mount.mountPoint))
    }

    /// This process's driver: detection from /proc, then the v2 controller files read.
    public static func host() throws -> CgroupDriver {
        let cg = try FS.readText("/proc/self/cgroup")
        let mi = try FS.readText("/proc/self/mountinfo")
        return try detect(procSelfCgroup: cg, mountinfo: mi).probed()
    }

    /// Fills in what only the filesystem knows (v2: which controllers our cgroup has and
    /// which it already passes down), so that planning can name a missing controller.
    public func probed() throws -> CgroupDriver {
        switch self {
        case .v1: return self
        case .v2(var d):
            d.available = Set(try FS.readText(d.own + "/cgroup.controllers").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            d.delegated = Set(try FS.readText(d.own + "/cgroup.subtree_control").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            return .v2(d)
        }
    }

    /// Every directory to create and value to write for this jail, in order. Pure.
    /// Throws when a limit needs a controller this host does not give us.
    public func plan(jail: String, instance: String, limits: CgroupLimits) throws -> [CgroupWrite] {
        try CgroupNames.checkComponent(instance, what: "instance")
        try CgroupNames.checkComponent(jail, what: "jail")
        try limits.validate()
        switch self {
        case .v1(let d): return try d.plan(jail: jail, instance: instance, limits: limits)
        case .v2(let d): return try d.plan(jail: jail, instance: instance, limits: limits)
        }
    }

    /// The handle of a jail's cgroup (which may not exist yet).
    public func cgroup(jail: String, instance: String) -> JailCgroup {
        switch self {
        case .v1(let d): return d.cgroup(jail: jail, instance: instance)
        case .v2(let d): return d.cgroup(jail: jail, instance: instance)
        }
    }

    /// Plans and applies; on failure removes what it made, so a failed create leaves
    /// nothing behind for the leak check.
    public func create(jail: String, instance: String, limits: CgroupLimits) throws -> JailCgroup {
        let writes = try plan(jail: jail, instance: instance, limits: limits)
        let cg = cgroup(jail: jail, instance: instance)
        do {
            try cg.apply(writes)
        } catch {
            do { try cg.remove() } catch let cleanup {
                throw JailError(.system, "\(error); and removing the partial cgroup failed: \(cleanup)")
            }
            throw error
        }
        return cg
    }
}
