/// cgroup v2: one hierarchy. Jails live in `<own>/jailctl.<instance>/<jail>`, where
/// `<own>` is the cgroup this process is in.
///
/// The "no internal processes" rule: a non-root cgroup can have processes or enable
/// controllers for its children, not both. Our own cgroup holds us, so we cannot enable
/// controllers in `<own>/cgroup.subtree_control` ourselves, and we never move ourselves
/// into a leaf to make that possible (that would silently move the caller). What we do:
/// - `<own>/jailctl.<instance>` holds no process, so we enable controllers there for the
///   jails, provided `<own>` already passes them down (its subtree_control lists them).
/// - If `<own>` is the hierarchy root (a container with its own cgroup namespace), the
///   kernel exempts it from the rule and we enable what is missing there.
/// - Otherwise a limit that needs an undelegated controller is an error that says how to
///   fix it (run the daemon under systemd with Delegate=yes plus a leaf for the daemon,
///   or start the CLI from a cgroup whose parent delegated the controllers). A jail
///   without limits still gets its cgroup: membership, cgroup.kill, freezing and CPU
///   usage need no controller.
public struct CgroupV2Driver: Sendable, Equatable {
    public var mountPoint: String
    /// Directory of our own cgroup.
    public var own: String
    public var ownIsRoot: Bool
    /// `<own>/cgroup.controllers` and `<own>/cgroup.subtree_control`; nil until probed.
    public var available: Set<String>?
    public var delegated: Set<String>?

    public init(mountPoint: String, own: String, ownIsRoot: Bool, available: Set<String>? = nil, delegated: Set<String>? = nil) {
        self.mountPoint = mountPoint
        self.own = own
        self.ownIsRoot = ownIsRoot
        self.available = available
        self.delegated = delegated
    }

    static let supported: Set<String> = ["cpu", "memory", "pids"]

    func instanceDirectory(_ instance: String) -> String { own + "/" + CgroupNames.instanceDirectory(instance) }

    func plan(jail: String, instance: String, limits: CgroupLimits) throws -> [CgroupWrite] {
        let needed = limits.controllers
        var out: [CgroupWrite] = []
        var enableInOwn: [String] = []
        for c in needed {
            if let a = available, !a.contains(c) {
                throw JailError(.system, "cgroup v2: the \(c) controller is not available in \(own) (cgroup.controllers: \(a.sorted().joined(separator: " ")))")
            }
            if let d = delegated, !d.contains(c) {
                if ownIsRoot {
                    enableInOwn.append(c)
                } else {
                    throw JailError(.system, """
                        cgroup v2: the \(c) controller is not enabled for the children of \(own), and the kernel \
                        allows enabling it only in a cgroup without processes; jailctl is in that cgroup and does not \
                        move itself. Run jailctl under systemd with Delegate=yes from a leaf cgroup, or enable \(c) in \
                        the parent's cgroup.subtree_control from a cgroup that holds no processes
                        """)
                }
            }
        }
        if !enableInOwn.isEmpty {
            out.append(.write(own + "/cgroup.subtree_control", enableInOwn.map { "+" + $0 }.joined(separator: " ")))
        }
        let inst = instanceDirectory(instance)
        out.append(.mkdir(inst))
        // Enable what the limits need plus whatever else of ours is passed down, so that
        // stats (memory.current, pids.current) exist for jails without limits too.
        let downstream = Set(needed).union((delegated ?? []).intersection(Self.supported)).union(enableInOwn)
        if !downstream.isEmpty {
            out.append(.write(inst + "/cgroup.subtree_control", downstream.sorted().map { "+" + $0 }.joined(separator: " ")))
        }
        let dir = inst + "/" + jail
        out.append(.mkdir(dir))
        if let m = limits.memory { out.append(.write(dir + "/memory.max", String(m))) }
        if let s = limits.memorySwap { out.append(.write(dir + "/memory.swap.max", String(s))) }
        if let p = limits.pids { out.append(.write(dir + "/pids.max", String(p))) }
        if let c = limits.cpu { out.append(.write(dir + "/cpu.max", "\(CgroupLimits.quota(cpus: c)) \(CgroupLimits.cpuPeriod)")) }
        if let w = limits.cpuWeight { out.append(.write(dir + "/cpu.weight", String(w))) }
        return out
    }

    func cgroup(jail: String, instance: String) -> JailCgroup {
        let inst = instanceDirectory(instance)
        let dir = inst + "/" + jail
        return JailCgroup(version: .v2, directories: [dir], instanceDirectories: [inst],
                          memory: dir, pids: dir, cpuUsage: dir, freezer: dir)
    }
}
