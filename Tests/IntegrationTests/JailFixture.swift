import Glibc
import Testing

@testable import JailKit

/// A spec directory and a state root of its own under /tmp/jailctl-test-*, with the
/// static probe in an image. `close()` takes down every jail and removes everything.
final class JailFixture {
    let dir: TempDir
    let manager: JailManager
    var specs: String { dir.path + "/specs" }

    /// `host`: the text of the spec directory's jailctl.toml (the manager reads it once).
    init(_ tag: String, host: String? = nil) throws {
        try requireRoot()
        dir = try TempDir(tag)
        try FS.mkdirs(dir.path + "/specs/Images")
        try FS.mkdirs(dir.path + "/specs/Jails")
        if let host { try FS.writeAtomically(dir.path + "/specs/jailctl.toml", host + "\n") }
        try FS.mkdirs(dir.path + "/bin")
        #expect(run(["/bin/cp", Probe.binary, dir.path + "/bin/probe"]) == 0)
        manager = try JailManager(root: StateRoot(path: dir.path + "/state"), specsDirectory: dir.path + "/specs")
        try image("probe", """
            binaries = ["/bin/sh", "/bin/sleep", "/bin/cat", "/bin/ls", "/bin/chmod"]
            files = ["\(dir.path)/bin/probe"]
            """)
    }

    var probe: String { dir.path + "/bin/probe" }

    func image(_ name: String, _ toml: String) throws {
        try FS.writeAtomically(specs + "/Images/\(name).toml", toml + "\n")
    }

    func jail(_ name: String, _ toml: String) throws {
        try FS.writeAtomically(specs + "/Jails/\(name).toml", toml + "\n")
    }

    /// A jail that sleeps until stopped; SIGTERM ends it at once (the probe handles it
    /// from its first instruction, unlike a shell's trap, which a early signal misses).
    func sleeper(_ name: String, extra: String = "") throws {
        try jail(name, """
            image = "probe"
            command = ["\(probe)", "sleep", "3600"]
            stop_timeout = 5
            \(extra)
            """)
    }

    /// Runs argv in the jail and returns (wait status, output).
    func exec(_ name: String, _ argv: [String]) throws -> (Int32, String) {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let status: Int32
        do {
            status = try manager.exec(name, argv: argv, stdio: .init(stdin: -1, stdout: fds[1], stderr: fds[1]))
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        let out = readPipe(fds[0])
        close(fds[0])
        return (status, out)
    }

    func cleanUp() {
        for s in (try? manager.statuses()) ?? [] where s.state == .running {
            _ = try? manager.down(s.name, timeout: 2)
        }
        // A cgroup still here after every jail went down is a bug: name it (the test
        // fails) and remove it, so one failure does not leak into the leak check.
        recordLeftoverCgroups(manager)
        dir.remove()
    }
}

/// Mounts whose source or mount point lies under the fixture (there must be none
/// outside a running jail's own namespace).
func hostMounts(under path: String) -> [String] {
    ((try? FS.readText("/proc/self/mountinfo")) ?? "").split(separator: "\n").map(String.init).filter { $0.contains(path) }
}

/// Processes whose root is under the fixture.
func processes(rootedUnder path: String) -> [String] {
    ((try? FS.list("/proc")) ?? []).filter { $0.allSatisfy(\.isNumber) }.compactMap { pid in
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/root", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let root = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return root.hasPrefix(path) ? pid : nil
    }
}
