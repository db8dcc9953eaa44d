import Glibc
import Testing

@testable import JailKit

/// `idmap = true`: an existing volume owned by host root is the jail root's through an
/// idmapped mount, without a chown on the host; without it, it is a stranger's.
@Suite("Idmapped volumes (root)", .serialized)
struct IdmapVolumeTests {
    func volumeJail(_ f: JailFixture, _ name: String, source: String, idmap: Bool) throws {
        try f.sleeper(name, extra: """
            userns = true
            [[volumes]]
            source = "\(source)"
            target = "/data"
            idmap = \(idmap)
            """)
    }

    @Test func hostRootsFilesAreTheJailRootsWithoutAChown() throws {
        let f = try JailFixture("idmap")
        defer { f.cleanUp() }
        let data = f.dir.path + "/data"
        try FS.mkdirs(data, mode: 0o755)
        try FS.writeAtomically(data + "/from-host", "host\n", mode: 0o644)
        try check("chown", chown(data, 0, 0))
        try volumeJail(f, "mapped", source: data, idmap: true)
        try volumeJail(f, "plain", source: data, idmap: false)
        _ = try f.manager.up("mapped")
        let plan = try f.manager.dryRun("mapped").render()
        #expect(plan.contains("bind \(data) on /data (idmapped,nosuid,nodev,rec)"), "\(plan)")
        _ = try f.manager.up("plain")
        let range = try f.manager.state.idRange(for: "mapped")

        let (_, report) = try f.exec("mapped", [f.probe, "report", "/data"])
        #expect(probeReport(report)["writable:/data"] == "yes", "\(report)")
        let (w, out) = try f.exec("mapped", ["/bin/sh", "-c", "echo jail >> /data/from-host && echo new > /data/new && cat /data/from-host && ls -ln /data"])
        #expect(w == 0 && out.hasPrefix("host\njail\n"), "\(out)")
        // Inside, host root's files are root's (uid 0), not nobody's (65534).
        #expect(out.contains(" 0 0 "), "\(out)")
        // On the host nothing moved to the jail's range: what the jail's root made is host root's.
        var st = stat()
        #expect(stat(data + "/new", &st) == 0 && st.st_uid == 0 && st.st_gid == 0)
        #expect(stat(data, &st) == 0 && st.st_uid == 0 && st.st_uid != range.base)
        #expect(try FS.readText(data + "/from-host") == "host\njail\n")

        // The same directory without idmap: the jail's root is a stranger to it.
        let (_, plain) = try f.exec("plain", [f.probe, "report", "/data"])
        #expect(probeReport(plain)["writable:/data"] == "Permission denied", "\(plain)")
        let (wp, _) = try f.exec("plain", ["/bin/sh", "-c", "echo x >> /data/from-host"])
        #expect(wp != 0)
        _ = try f.manager.down("mapped")
        _ = try f.manager.down("plain")
    }

    /// What `up` makes in an idmapped volume (the volume itself, a jail user's home) is
    /// owned by the jail's ids as host ids: through the mount they are the jail's again.
    @Test func createdDirectoriesUseHostIdsAsTheJailsOwn() throws {
        let f = try JailFixture("idmap-create")
        defer { f.cleanUp() }
        let data = f.dir.path + "/new/data"
        try f.image("ids", "binaries = [\"/bin/sh\", \"/usr/bin/id\", \"/usr/bin/stat\"]\nfiles = [\"\(f.probe)\"]")
        try f.jail("c", """
            image = "ids"
            command = ["\(f.probe)", "sleep", "3600"]
            stop_timeout = 5
            userns = true
            user = "app"
            [[volumes]]
            source = "\(data)"
            target = "/data"
            create = true
            owner = 1000
            idmap = true
            [[users]]
            name = "app"
            home = "/data/app"
            """)
        _ = try f.manager.up("c")
        var st = stat()
        #expect(stat(data, &st) == 0 && st.st_uid == 1000 && st.st_gid == 1000)
        #expect(stat(data + "/app", &st) == 0 && st.st_uid == 1001 && st.st_gid == 1001)
        let (s, out) = try f.exec("c", ["/usr/bin/stat", "-c", "%u:%g %U", "/data/app"])
        #expect(s == 0 && out == "1001:1001 app\n", "\(out)")
        _ = try f.manager.down("c")
    }

    /// A source on a shared mount (a systemd host's / is one): the jail's copy is
    /// private, so no mount propagates between the host and the jail through it.
    @Test func anIdmappedVolumeIsNoPeerOfASharedSource() throws {
        let f = try JailFixture("idmap-shared")
        defer { f.cleanUp() }
        let data = f.dir.path + "/data"
        try FS.mkdirs(data + "/sub")
        try check("bind", mount(data, data, nil, UInt(MS_BIND), nil))
        defer { umount2(data, Int32(MNT_DETACH)) }
        try check("make-shared", mount(nil, data, nil, UInt(MS_SHARED), nil))
        try volumeJail(f, "s", source: data, idmap: true)
        _ = try f.manager.up("s")
        let (_, mountinfo) = try f.exec("s", ["/bin/cat", "/proc/self/mountinfo"])
        let line = mountinfo.split(separator: "\n").first { $0.split(separator: " ").dropFirst(4).first == "/data" }
        #expect(line != nil && !(line ?? "").contains("shared:") && !(line ?? "").contains("master:"), "\(line ?? "no /data")")
        // A mount the host makes below the source stays the host's.
        try check("tmpfs below", mount("tmpfs", data + "/sub", "tmpfs", 0, nil))
        defer { umount2(data + "/sub", Int32(MNT_DETACH)) }
        let (_, after) = try f.exec("s", ["/bin/cat", "/proc/self/mountinfo"])
        #expect(!after.contains(" /data/sub "), "\(after)")
        _ = try f.manager.down("s")
    }

    @Test func aReadonlyIdmappedVolumeStaysReadonly() throws {
        let f = try JailFixture("idmap-ro")
        defer { f.cleanUp() }
        let data = f.dir.path + "/data"
        try FS.mkdirs(data, mode: 0o755)
        try f.sleeper("ro", extra: """
            userns = true
            [[volumes]]
            source = "\(data)"
            target = "/data"
            idmap = true
            readonly = true
            """)
        _ = try f.manager.up("ro")
        let (_, report) = try f.exec("ro", [f.probe, "report", "/data"])
        #expect(probeReport(report)["writable:/data"] == "Read-only file system", "\(report)")
        _ = try f.manager.down("ro")
    }

    @Test func aFilesystemWithoutIdmappedMountsIsAClearError() throws {
        let f = try JailFixture("idmap-ramfs")
        defer { f.cleanUp() }
        let ramfs = f.dir.path + "/ramfs"
        try FS.mkdirs(ramfs)
        try check("mount ramfs", mount("none", ramfs, "ramfs", 0, nil))
        defer { umount2(ramfs, Int32(MNT_DETACH)) }
        try volumeJail(f, "r", source: ramfs, idmap: true)
        do {
            _ = try f.manager.up("r")
            Issue.record("up of an idmapped ramfs volume succeeded")
        } catch {
            #expect("\(error)".contains("volume \(ramfs): its filesystem (ramfs), or one mounted below it, does not support idmapped mounts"), "\(error)")
        }
        // Rolled back: no jail, no run directory, no cgroup.
        #expect(try f.manager.status(of: "r") == nil)
        #expect(!FS.exists(f.manager.root.jailRun("r")))
    }
}
