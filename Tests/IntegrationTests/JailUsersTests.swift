import Glibc
import Testing

@testable import JailKit

/// Users a jail spec defines for that jail only, in a real jail: `id` and `getent`
/// resolve them, the passwd is the jail's own and read-only, the home is made in the
/// volume and owned by the user through the id map.
@Suite("Jail users (root)", .serialized)
struct JailUsersTests {
    func idsImage(_ f: JailFixture) throws {
        try f.image("ids", """
            binaries = ["/bin/sh", "/bin/cat", "/usr/bin/id", "/usr/bin/getent", "/usr/bin/touch", "/bin/sleep"]
            files = ["\(f.probe)"]
            """)
    }

    @Test func aJailUserResolvesAndOwnsItsHome() throws {
        let f = try JailFixture("users")
        defer { f.cleanUp() }
        try idsImage(f)
        let home = f.dir.path + "/home"
        try f.jail("app", """
            image = "ids"
            command = ["\(f.probe)", "sleep", "3600"]
            stop_timeout = 5
            userns = true
            user = "app"
            [[volumes]]
            source = "\(home)"
            target = "/home"
            create = true
            owner = 0
            [[users]]
            name = "app"
            home = "/home/app"
            shell = "/bin/sh"
            """)
        _ = try f.manager.up("app")
        let range = try f.manager.state.idRange(for: "app")
        let (s1, id) = try f.exec("app", ["/usr/bin/id"])
        #expect(s1 == 0 && id == "uid=1001(app) gid=1001(app) groups=1001(app)\n", "\(id)")
        let (s2, entry) = try f.exec("app", ["/usr/bin/getent", "passwd", "app"])
        #expect(s2 == 0 && entry == "app:x:1001:1001::/home/app:/bin/sh\n", "\(entry)")
        // Every entry is the image's (root, nobody) or the jail's own: no host user.
        let (_, all) = try f.exec("app", ["/usr/bin/getent", "passwd"])
        let names = all.split(separator: "\n").map { String($0.split(separator: ":").first ?? "") }
        #expect(names == ["root", "nobody", "app"], "\(all)")
        let (_, groups) = try f.exec("app", ["/usr/bin/getent", "group", "app"])
        #expect(groups == "app:x:1001:\n")
        // The jail's own files, bound read-only.
        let (_, mountinfo) = try f.exec("app", ["/bin/cat", "/proc/self/mountinfo"])
        for file in ["/etc/passwd", "/etc/group"] {
            let line = mountinfo.split(separator: "\n").first { $0.split(separator: " ").dropFirst(4).first.map(String.init) == file }
            #expect(line?.split(separator: " ").dropFirst(5).first?.split(separator: ",").first == "ro", "\(file): \(line ?? "not mounted")")
        }
        let (w, _) = try f.exec("app", ["/bin/sh", "-c", "echo x >> /etc/passwd"])
        #expect(w != 0)
        #expect(!(try FS.readText(f.manager.root.jailRun("app") + "/passwd")).contains("x\n"))
        // The shared image keeps its own passwd, without the jail's user.
        let imagePath = try #require(try f.manager.images.path(of: "ids")).1
        #expect(!(try FS.readText(imagePath + "/etc/passwd")).contains("app"))
        // The home: made in the volume, the user's (through the id map), HOME points at it.
        var st = stat()
        #expect(stat(home + "/app", &st) == 0)
        #expect(st.st_uid == range.base + 1001 && st.st_gid == range.base + 1001 && st.st_mode & 0o777 == 0o750)
        let (t, out) = try f.exec("app", ["/bin/sh", "-c", "touch $HOME/file && echo $HOME"])
        #expect(t == 0 && out == "/home/app\n", "\(out)")
        #expect(stat(home + "/app/file", &st) == 0 && st.st_uid == range.base + 1001)
        _ = try f.manager.down("app")
        #expect(!FS.exists(f.manager.root.jailRun("app")))
    }

    @Test func aJailUserMayNotTakeAnImageUsersId() throws {
        let f = try JailFixture("users-clash")
        defer { f.cleanUp() }
        try idsImage(f)
        // Another jail of the image runs as www-data (uid 33): the image has it.
        try f.jail("web", "image = \"ids\"\ncommand = [\"/bin/sleep\", \"1\"]\nuser = \"www-data\"")
        try f.jail("app", """
            image = "ids"
            command = ["/bin/sleep", "1"]
            [[volumes]]
            source = "\(f.dir.path)/home"
            target = "/home"
            create = true
            [[users]]
            name = "app"
            uid = 33
            home = "/home/app"
            """)
        #expect(throws: JailError.self) { try f.manager.up("app") }
        do {
            _ = try f.manager.up("app")
        } catch {
            #expect("\(error)".contains("uid 33 is already user www-data of the image ids"), "\(error)")
        }
        // Nothing was made: no home, no volume, no run directory.
        #expect(!FS.exists(f.dir.path + "/home"))
        #expect(!FS.exists(f.manager.root.jailRun("app")))
        // A shell the image lacks is refused the same way.
        try f.jail("app", """
            image = "ids"
            command = ["/bin/sleep", "1"]
            [[volumes]]
            source = "\(f.dir.path)/home"
            target = "/home"
            create = true
            [[users]]
            name = "app"
            home = "/home/app"
            shell = "/bin/bash"
            """)
        do {
            _ = try f.manager.up("app")
            Issue.record("up with a shell the image lacks succeeded")
        } catch {
            #expect("\(error)".contains("users app: shell /bin/bash is not an executable file in image ids"), "\(error)")
        }
        #expect(!FS.exists(f.dir.path + "/home"))
    }

    /// An image with a PAM-using program has a shadow of locked entries; a jail with
    /// its own users gets its own, with them (still locked), bound read-only.
    @Test func aPAMImageGivesTheJailItsOwnLockedShadow() throws {
        let f = try JailFixture("users-shadow")
        defer { f.cleanUp() }
        try f.image("pam", "binaries = [\"/bin/sh\", \"/bin/su\", \"/bin/cat\"]\nfiles = [\"\(f.probe)\"]")
        try f.jail("p", """
            image = "pam"
            command = ["\(f.probe)", "sleep", "3600"]
            stop_timeout = 5
            userns = true
            [[volumes]]
            source = "\(f.dir.path)/home"
            target = "/home"
            create = true
            [[users]]
            name = "app"
            home = "/home/app"
            """)
        _ = try f.manager.up("p")
        let imagePath = try #require(try f.manager.images.path(of: "pam")).1
        let imageShadow = try FS.readText(imagePath + "/etc/shadow")
        #expect(!imageShadow.contains("app:"))
        let (_, inside) = try f.exec("p", ["/bin/cat", "/etc/shadow"])
        let lines = inside.split(separator: "\n")
        #expect(lines.map { String($0.split(separator: ":").first ?? "") } == ["root", "nobody", "app"], "\(inside)")
        #expect(lines.allSatisfy { $0.split(separator: ":", omittingEmptySubsequences: false).dropFirst().first == "!" })
        let (_, mountinfo) = try f.exec("p", ["/bin/cat", "/proc/self/mountinfo"])
        let line = mountinfo.split(separator: "\n").first { $0.split(separator: " ").dropFirst(4).first == "/etc/shadow" }
        #expect(line?.split(separator: " ").dropFirst(5).first?.split(separator: ",").first == "ro")
        _ = try f.manager.down("p")
    }
}
