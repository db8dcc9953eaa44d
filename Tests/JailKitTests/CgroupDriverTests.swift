import Glibc
import Testing

@testable import JailKit

/// Detection and planning are pure: these run on texts copied from real hosts.
@Suite struct CgroupDriverTests {
    // This development machine (hybrid: v1 controllers, an empty cgroup2 at …/unified;
    // our memory cgroup is not the root one, the others are).
    static let hybridCgroup = """
        9:name=systemd:/
        8:pids:/
        7:blkio:/
        6:freezer:/
        5:devices:/
        4:memory:/process_api/d4db79f79d7b0160351fdf476fc77572
        3:cpuset:/
        2:cpuacct:/
        1:cpu:/
        0::/

        """
    static let hybridMountinfo = """
        22 27 0:21 / /proc rw,relatime - proc proc rw
        23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
        24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334492k,nr_inodes=3083623,mode=755
        25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684092k
        26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
        27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
        28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755
        29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
        30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684092k
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
        37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
        38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

        """
    // A Debian 12 systemd host: pure v2.
    static let v2Cgroup = "0::/system.slice/jailctl.service/supervisor\n"
    static let v2Mountinfo = """
        22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
        25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot

        """
    static let full = CgroupLimits(memory: 64 << 20, memorySwap: 32 << 20, pids: 16, cpu: 0.5, cpuWeight: 200)

    @Test func detectsHybridAsV1WithOwnPathPerController() throws {
        let d = try CgroupDriver.detect(procSelfCgroup: Self.hybridCgroup, mountinfo: Self.hybridMountinfo)
        guard case .v1(let v1) = d else { Issue.record("expected v1, got \(d)"); return }
        #expect(v1.hierarchies == [
            .init(controllers: ["memory"], mountPoint: "/sys/fs/cgroup/memory",
                  own: "/sys/fs/cgroup/memory/process_api/d4db79f79d7b0160351fdf476fc77572"),
            .init(controllers: ["pids"], mountPoint: "/sys/fs/cgroup/pids", own: "/sys/fs/cgroup/pids"),
            .init(controllers: ["cpu"], mountPoint: "/sys/fs/cgroup/cpu", own: "/sys/fs/cgroup/cpu"),
            .init(controllers: ["cpuacct"], mountPoint: "/sys/fs/cgroup/cpuacct", own: "/sys/fs/cgroup/cpuacct"),
            .init(controllers: ["freezer"], mountPoint: "/sys/fs/cgroup/freezer", own: "/sys/fs/cgroup/freezer"),
        ])
    }

    @Test func detectsCoMountedCpuCpuacctOnce() throws {
        let cg = "3:cpu,cpuacct:/a\n2:pids:/a\n1:memory:/a\n0::/a\n"
        let mi = """
            40 31 0:37 / /cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
            41 31 0:38 / /cg/pids rw - cgroup cgroup rw,pids
            42 31 0:39 / /cg/mem\\040ory rw - cgroup cgroup rw,memory
            """
        guard case .v1(let v1) = try CgroupDriver.detect(procSelfCgroup: cg, mountinfo: mi) else { Issue.record("not v1"); return }
        #expect(v1.hierarchies.map(\.own) == ["/cg/mem ory/a", "/cg/pids/a", "/cg/cpu,cpuacct/a"])
        #expect(v1.hierarchies[2].controllers == ["cpu", "cpuacct"])
    }

    @Test func detectsPureV2() throws {
        let d = try CgroupDriver.detect(procSelfCgroup: Self.v2Cgroup, mountinfo: Self.v2Mountinfo)
        #expect(d == .v2(CgroupV2Driver(mountPoint: "/sys/fs/cgroup", own: "/sys/fs/cgroup/system.slice/jailctl.service/supervisor", ownIsRoot: false)))
    }

    @Test func containerBindMountRootIsStripped() throws {
        // A container without its own cgroup namespace sees the host path in
        // /proc/self/cgroup and a mount of its subtree.
        let mi = "25 22 0:23 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
        let d = try CgroupDriver.detect(procSelfCgroup: "0::/docker/abc/app\n", mountinfo: mi)
        #expect(d == .v2(CgroupV2Driver(mountPoint: "/sys/fs/cgroup", own: "/sys/fs/cgroup/app", ownIsRoot: false)))
        #expect(throws: JailError.self) { try CgroupDriver.detect(procSelfCgroup: "0::/other\n", mountinfo: mi) }
    }

    @Test func v1PlanRendering() throws {
        let d = try CgroupDriver.detect(procSelfCgroup: Self.hybridCgroup, mountinfo: Self.hybridMountinfo)
        let mem = "/sys/fs/cgroup/memory/process_api/d4db79f79d7b0160351fdf476fc77572/jailctl.j1a2b3c4"
        #expect(try d.plan(jail: "web", instance: "j1a2b3c4", limits: Self.full).render() == """
            mkdir \(mem)
            mkdir \(mem)/web
            mkdir /sys/fs/cgroup/pids/jailctl.j1a2b3c4
            mkdir /sys/fs/cgroup/pids/jailctl.j1a2b3c4/web
            mkdir /sys/fs/cgroup/cpu/jailctl.j1a2b3c4
            mkdir /sys/fs/cgroup/cpu/jailctl.j1a2b3c4/web
            mkdir /sys/fs/cgroup/cpuacct/jailctl.j1a2b3c4
            mkdir /sys/fs/cgroup/cpuacct/jailctl.j1a2b3c4/web
            mkdir /sys/fs/cgroup/freezer/jailctl.j1a2b3c4
            mkdir /sys/fs/cgroup/freezer/jailctl.j1a2b3c4/web
            write \(mem)/web/memory.limit_in_bytes 67108864
            write \(mem)/web/memory.memsw.limit_in_bytes 100663296
            write /sys/fs/cgroup/pids/jailctl.j1a2b3c4/web/pids.max 16
            write /sys/fs/cgroup/cpu/jailctl.j1a2b3c4/web/cpu.cfs_period_us 100000
            write /sys/fs/cgroup/cpu/jailctl.j1a2b3c4/web/cpu.cfs_quota_us 50000
            write /sys/fs/cgroup/cpu/jailctl.j1a2b3c4/web/cpu.shares 2048

            """)
    }

    @Test func v2PlanRendering() throws {
        let o = "/sys/fs/cgroup/system.slice/jailctl.service/supervisor"
        let d = CgroupDriver.v2(CgroupV2Driver(mountPoint: "/sys/fs/cgroup", own: o, ownIsRoot: false,
                                               available: ["cpu", "io", "memory", "pids"], delegated: ["cpu", "io", "memory", "pids"]))
        #expect(try d.plan(jail: "web", instance: "j1a2b3c4", limits: Self.full).render() == """
            mkdir \(o)/jailctl.j1a2b3c4
            write \(o)/jailctl.j1a2b3c4/cgroup.subtree_control +cpu +memory +pids
            mkdir \(o)/jailctl.j1a2b3c4/web
            write \(o)/jailctl.j1a2b3c4/web/memory.max 67108864
            write \(o)/jailctl.j1a2b3c4/web/memory.swap.max 33554432
            write \(o)/jailctl.j1a2b3c4/web/pids.max 16
            write \(o)/jailctl.j1a2b3c4/web/cpu.max 50000 100000
            write \(o)/jailctl.j1a2b3c4/web/cpu.weight 200

            """)
    }

    @Test func v2UndelegatedControllerIsAnErrorNamingIt() throws {
        let d = CgroupDriver.v2(CgroupV2Driver(mountPoint: "/sys/fs/cgroup", own: "/sys/fs/cgroup/user.slice/s.scope", ownIsRoot: false,
                                               available: ["cpu", "memory", "pids"], delegated: []))
        let e = #expect(throws: JailError.self) { try d.plan(jail: "web", instance: "j1", limits: .init(pids: 5)) }
        #expect(e?.message.contains("pids controller") == true)
        // Without limits the jail still gets a cgroup (membership, kill, cpu usage).
        #expect(try d.plan(jail: "web", instance: "j1", limits: .none).map(\.description) == [
            "mkdir /sys/fs/cgroup/user.slice/s.scope/jailctl.j1", "mkdir /sys/fs/cgroup/user.slice/s.scope/jailctl.j1/web",
        ])
        // The root cgroup is exempt from "no internal processes": enable there.
        let root = CgroupDriver.v2(CgroupV2Driver(mountPoint: "/sys/fs/cgroup", own: "/sys/fs/cgroup", ownIsRoot: true,
                                                  available: ["memory", "pids"], delegated: []))
        #expect(try root.plan(jail: "w", instance: "j1", limits: .init(pids: 5)).first == .write("/sys/fs/cgroup/cgroup.subtree_control", "+pids"))
        let absent = #expect(throws: JailError.self) { try root.plan(jail: "w", instance: "j1", limits: .init(cpu: 1)) }
        #expect(absent?.message.contains("cpu controller is not available") == true)
    }

    @Test func v1AbsentControllerIsAnErrorNamingIt() throws {
        let d = try CgroupDriver.detect(procSelfCgroup: "2:memory:/\n1:cpu:/\n0::/\n", mountinfo: """
            1 0 0:1 / /c/memory rw - cgroup cgroup rw,memory
            2 0 0:2 / /c/cpu rw - cgroup cgroup rw,cpu
            """)
        let e = #expect(throws: JailError.self) { try d.plan(jail: "web", instance: "j1", limits: .init(pids: 10)) }
        #expect(e?.message.contains("pids controller is not mounted") == true)
    }

    @Test func badNamesAndValuesAreRefusedBeforeAnythingIsPlanned() throws {
        let d = try CgroupDriver.detect(procSelfCgroup: Self.v2Cgroup, mountinfo: Self.v2Mountinfo)
        #expect(throws: JailError.self) { try d.plan(jail: "../x", instance: "j1", limits: .none) }
        #expect(throws: JailError.self) { try d.plan(jail: "web", instance: "", limits: .none) }
        #expect(throws: JailError.self) { try d.plan(jail: "web", instance: "j1", limits: .init(cpuWeight: 0)) }
        #expect(throws: JailError.self) { try d.plan(jail: "web", instance: "j1", limits: .init(cpu: -1)) }
        #expect(CgroupLimits.shares(weight: 1) == 10 && CgroupLimits.shares(weight: 10000) == 102_400)
        #expect(CgroupLimits.quota(cpus: 0.001) == 1000 && CgroupLimits.quota(cpus: 2) == 200_000)
    }
}

/// The v2 driver applied to a fake cgroupfs: a plain directory tree with the control files
/// as plain files, found through a mountinfo line that points into it.
@Suite struct CgroupFakeTreeTests {
    @Test func v2DriverWritesTheExpectedFiles() throws {
        var template = Array("/tmp/jailctl-cgfake-XXXXXX".utf8CString)
        let made: String? = template.withUnsafeMutableBufferPointer { buf in
            buf.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
        }
        guard let tmp = made else { throw SystemError("mkdtemp") }
        defer {
            do { try FS.removeTree(tmp) } catch { Issue.record("cleanup \(tmp): \(error)") }
        }
        let mount = tmp + "/cgroup"
        let own = mount + "/svc"
        try FS.mkdirs(own)
        try FS.writeAtomically(own + "/cgroup.controllers", "cpu io memory pids\n")
        try FS.writeAtomically(own + "/cgroup.subtree_control", "cpu memory pids\n")
        let mi = "25 22 0:23 / \(mount) rw - cgroup2 cgroup2 rw,nsdelegate\n"
        let driver = try CgroupDriver.detect(procSelfCgroup: "0::/svc\n", mountinfo: mi).probed()
        var cg = driver.cgroup(jail: "web", instance: "jt0")
        cg.createsFiles = true
        try cg.apply(try driver.plan(jail: "web", instance: "jt0", limits: .init(memory: 1 << 30, pids: 64, cpu: 1.5, cpuWeight: 50)))
        let dir = own + "/jailctl.jt0/web"
        #expect(cg.directories == [dir])
        #expect(try FS.readText(own + "/jailctl.jt0/cgroup.subtree_control") == "+cpu +memory +pids")
        #expect(try FS.readText(dir + "/memory.max") == "1073741824")
        #expect(try FS.readText(dir + "/pids.max") == "64")
        #expect(try FS.readText(dir + "/cpu.max") == "150000 100000")
        #expect(try FS.readText(dir + "/cpu.weight") == "50")
        #expect(!FS.exists(dir + "/memory.swap.max"))
        // Our own cgroup is never written to.
        #expect(try FS.readText(own + "/cgroup.subtree_control") == "cpu memory pids\n")

        try cg.join(4242)
        #expect(try FS.readText(dir + "/cgroup.procs") == "4242")
        #expect(try cg.processes() == [4242])

        try FS.writeAtomically(dir + "/memory.current", "123456\n")
        try FS.writeAtomically(dir + "/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n")
        try FS.writeAtomically(dir + "/pids.current", "3\n")
        try FS.writeAtomically(dir + "/cpu.stat", "usage_usec 9876\nuser_usec 5000\nsystem_usec 4876\n")
        #expect(try cg.stats() == CgroupStats(memoryCurrent: 123_456, memoryPeak: nil, pidsCurrent: 3, cpuUsageMicros: 9876, oomKills: 1))

        // A second create of the same jail while it has processes is refused.
        #expect(throws: JailError.self) { try cg.apply(try driver.plan(jail: "web", instance: "jt0", limits: .none)) }
    }
}
