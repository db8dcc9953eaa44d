import Glibc
import Testing

@testable import JailKit

@Suite struct LaunchPlanTests {
    static let golden = String(#filePath).split(separator: "/").dropLast().map(String.init)
        .reduce("") { $0 + "/" + $1 } + "/Golden"

    func samplePlan() -> LaunchPlan {
        let root = "/var/lib/jailctl/store/abc"
        var p = LaunchPlan(jail: "web", root: root, path: "/usr/sbin/nginx", argv: ["/usr/sbin/nginx", "-g", "daemon off;"],
                           environment: ["HOME=/", "PATH=/usr/bin:/bin"])
        p.mounts = MountPlanner.plan(root: root, image: root, volumes: [
            PlannedVolume(source: "/srv/www", target: "/srv/www", readonly: true),
            PlannedVolume(source: "/var/lib/web", target: "/run/web/state", readonly: false),
        ])
        p.hostname = "web"
        p.uid = 33
        p.gid = 33
        p.rlimits = [ResourceLimit(4, "core", soft: 0, hard: 0)]
        p.keepCapabilities = [Capabilities.number(of: "NET_BIND_SERVICE") ?? -1]
        return p
    }

    /// The whole plan as text, byte for byte: a change to mount order, flags or ids
    /// shows up here first. Regenerate with JAILCTL_UPDATE_GOLDEN=1.
    @Test func renderedPlanMatchesGolden() throws {
        let text = samplePlan().render()
        let path = Self.golden + "/launch-plan.txt"
        if getenvString("JAILCTL_UPDATE_GOLDEN") == "1" { try FS.writeAtomically(path, text) }
        #expect(text == (try FS.readText(path)))
    }

    @Test func overlayRootWhenImageLacksMountPoints() {
        var o = MountPlanner.Options()
        o.mountpointLayer = "/run/j/mnt"
        let ops = MountPlanner.plan(root: "/run/j/root", image: "/store/x", volumes: [], options: o)
        #expect(ops.first == MountOp(.mount, source: "overlay", target: "/run/j/root", fstype: "overlay",
                                     flags: UInt(2 | 4), data: "lowerdir=/run/j/mnt:/store/x"))
        #expect(!ops.contains { $0.kind == .remount && $0.target == "/run/j/root" })
    }

    @Test func devFromTheTemplateIsFourMountCalls() {
        var o = MountPlanner.Options()
        o.devTemplate = "/var/lib/jailctl/dev"
        let ops = MountPlanner.plan(root: "/r", image: "/store/x", volumes: [], options: o)
        let dev = ops.filter { $0.target == "/r/dev" || $0.target.hasPrefix("/r/dev/") }
        #expect(dev == [
            MountOp(.mount, source: "/var/lib/jailctl/dev", target: "/r/dev", flags: UInt(MS_BIND)),
            MountOp(.remount, target: "/r/dev", flags: UInt(MS_RDONLY | MS_NOSUID | MS_NOEXEC)),
            MountOp(.mount, source: "devpts", target: "/r/dev/pts", fstype: "devpts", flags: UInt(MS_NOSUID | MS_NOEXEC),
                    data: "newinstance,ptmxmode=0666,mode=620"),
            MountOp(.mount, source: "tmpfs", target: "/r/dev/shm", fstype: "tmpfs", flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC),
                    data: "mode=1777,size=64m"),
        ])
    }

    @Test func everyWritableMountIsNosuidNodev() {
        let ops = samplePlan().mounts
        for op in ops where op.kind == .mount && op.fstype == "tmpfs" && !op.target.hasSuffix("/dev") {
            #expect(op.flags & 2 != 0, "\(op.target) lacks nosuid")
            #expect(op.flags & 4 != 0, "\(op.target) lacks nodev")
            #expect(op.flags & 8 != 0, "\(op.target) lacks noexec")
        }
    }

    @Test func capabilityNames() {
        #expect(Capabilities.number(of: "CAP_NET_BIND_SERVICE") == 10)
        #expect(Capabilities.number(of: "sys_admin") == 21)
        #expect(Capabilities.number(of: "NOPE") == nil)
        #expect(Capabilities.name(of: 39) == "BPF")
    }
}

func getenvString(_ name: String) -> String? {
    guard let v = getenv(name) else { return nil }
    return String(cString: v)
}
