/// cgroup v1 (legacy and hybrid hosts): one hierarchy per controller (or per co-mounted
/// set, like cpu,cpuacct). A jail gets `<own>/jailctl.<instance>/<jail>` in each of the
/// hierarchies jailctl uses, `<own>` being our own cgroup *in that hierarchy* (they
/// differ: here memory is /process_api/<id> while pids is /). v1 has no "no internal
/// processes" rule, so nothing needs delegating.
public struct CgroupV1Driver: Sendable, Equatable {
    public struct Hierarchy: Sendable, Equatable {
        /// Sorted controller names of the hierarchy ("cpu", "cpuacct" when co-mounted).
        public var controllers: [String]
        public var mountPoint: String
        /// Directory of our own cgroup in this hierarchy.
        public var own: String
    }
    /// Hierarchies carrying memory, pids, cpu, cpuacct or freezer, in that order, each once.
    public var hierarchies: [Hierarchy]

    public init(hierarchies: [Hierarchy]) { self.hierarchies = hierarchies }

    func hierarchy(_ controller: String) -> Hierarchy? { hierarchies.first { $0.controllers.contains(controller) } }

    func jailDirectory(_ h: Hierarchy, jail: String, instance: String) -> String {
        h.own + "/" + CgroupNames.instanceDirectory(instance) + "/" + jail
    }

    func plan(jail: String, instance: String, limits: CgroupLimits) throws -> [CgroupWrite] {
        for c in limits.controllers where hierarchy(c) == nil {
            let mounted = hierarchies.flatMap(\.controllers)
            throw JailError(.system, "cgroup v1: the \(c) controller is not mounted (mounted: \(mounted.isEmpty ? "none" : mounted.joined(separator: ", ")))")
        }
        if limits.memorySwap != nil && limits.memory == nil {
            throw JailError(.invalidSpec, "cgroup limits: memorySwap needs memory on cgroup v1 (memory.memsw.limit_in_bytes is memory plus swap)")
        }
        var out: [CgroupWrite] = []
        for h in hierarchies {
            out.append(.mkdir(h.own + "/" + CgroupNames.instanceDirectory(instance)))
            out.append(.mkdir(jailDirectory(h, jail: jail, instance: instance)))
        }
        if let h = hierarchy("memory") {
            let dir = jailDirectory(h, jail: jail, instance: instance)
            // The memory limit first: memsw may never be below it.
            if let m = limits.memory { out.append(.write(dir + "/memory.limit_in_bytes", String(m))) }
            if let m = limits.memory, let s = limits.memorySwap {
                let (sum, overflow) = m.addingReportingOverflow(s)
                out.append(.write(dir + "/memory.memsw.limit_in_bytes", overflow ? "-1" : String(sum)))
            }
        }
        if let h = hierarchy("pids"), let p = limits.pids {
            out.append(.write(jailDirectory(h, jail: jail, instance: instance) + "/pids.max", String(p)))
        }
        if let h = hierarchy("cpu") {
            let dir = jailDirectory(h, jail: jail, instance: instance)
            if let c = limits.cpu {
                out.append(.write(dir + "/cpu.cfs_period_us", String(CgroupLimits.cpuPeriod)))
                out.append(.write(dir + "/cpu.cfs_quota_us", String(CgroupLimits.quota(cpus: c))))
            }
            if let w = limits.cpuWeight { out.append(.write(dir + "/cpu.shares", String(CgroupLimits.shares(weight: w)))) }
        }
        return out
    }

    func cgroup(jail: String, instance: String) -> JailCgroup {
        let dir = { (c: String) in self.hierarchy(c).map { self.jailDirectory($0, jail: jail, instance: instance) } }
        return JailCgroup(version: .v1,
                          directories: hierarchies.map { jailDirectory($0, jail: jail, instance: instance) },
                          instanceDirectories: hierarchies.map { $0.own + "/" + CgroupNames.instanceDirectory(instance) },
                          memory: dir("memory"), pids: dir("pids"), cpuUsage: dir("cpuacct"), freezer: dir("freezer"))
    }
}
