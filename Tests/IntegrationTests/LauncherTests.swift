import Glibc
import Testing

@testable import JailKit

/// The C launcher against the real kernel, on a hand-made root holding only the static
/// probe: no image builder involved.
@Suite("Launcher (root)", .serialized)
struct LauncherTests {
    func makeRoot(_ dir: TempDir) throws -> String {
        let root = dir.path + "/root"
        for d in ["", "/proc", "/dev", "/tmp", "/run", "/etc", "/data"] { try FS.mkdirs(root + d) }
        #expect(run(["/bin/cp", Probe.binary, root + "/probe"]) == 0)
        return root
    }

    func plan(_ root: String, _ args: [String], volumes: [PlannedVolume] = []) -> LaunchPlan {
        var p = LaunchPlan(jail: "t", root: root, path: "/probe", argv: ["probe"] + args, environment: ["A=1"])
        p.mounts = MountPlanner.plan(root: root, image: root, volumes: volumes)
        p.hostname = "probe-host"
        return p
    }

    func runForeground(_ plan: LaunchPlan) throws -> (Int32, String) {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let child = try Launcher.spawn(plan, stdio: .init(stdin: -1, stdout: fds[1], stderr: fds[1]), statusDir: nil)
        close(fds[1])
        let out = readPipe(fds[0])
        close(fds[0])
        var status: Int32 = 0
        waitpid(child.pid, &status, 0)
        return (status, out)
    }

    @Test func probeSeesOnlyTheJail() throws {
        try requireRoot()
        let dir = try TempDir("launch")
        defer { dir.remove() }
        let root = try makeRoot(dir)
        let data = dir.path + "/data"
        try FS.mkdirs(data)
        let (status, out) = try runForeground(plan(root, ["report", "/data"], volumes: [PlannedVolume(source: data, target: "/data", readonly: false)]))
        #expect(status == 0)
        let r = probeReport(out)
        #expect(r["hostname"] == "probe-host")
        #expect(r["pid"] == "1")
        #expect(r["pids"] == "1")
        #expect(r["sid_is_self"] == "1")
        #expect(r["exe1"] == "/probe")
        #expect(r["root"]?.split(separator: ",").sorted() == ["data", "dev", "etc", "probe", "proc", "run", "tmp"])
        #expect(r["writable:/"] == "Read-only file system")
        #expect(r["writable:/tmp"] == "yes")
        #expect(r["writable:/data"] == "yes")
        #expect(r["fds"] == "0,1,2")
        #expect(r["CapEff"] == "0000000000000000")
        #expect(r["CapBnd"] == "0000000000000000")
        #expect(r["no_new_privs"] == "1")
        #expect(out.contains("env:A=1\n"))
    }

    @Test func failingStepIsReported() throws {
        try requireRoot()
        let dir = try TempDir("launchfail")
        defer { dir.remove() }
        let root = try makeRoot(dir)
        var p = plan(root, ["report"], volumes: [PlannedVolume(source: dir.path + "/missing", target: "/data", readonly: true)])
        #expect(throws: JailError.self) { _ = try runForeground(p) }
        do {
            _ = try runForeground(p)
        } catch {
            #expect("\(error)" == "jail t: volume source \(dir.path)/missing: No such file or directory")
        }
        p = plan(root, ["report"])
        p.path = "/nope"
        do {
            _ = try runForeground(p)
            Issue.record("exec of a missing program succeeded")
        } catch {
            #expect("\(error)" == "jail t: execve /nope: No such file or directory")
        }
    }
}
