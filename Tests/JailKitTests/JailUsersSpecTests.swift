import Testing

@testable import JailKit

/// `[[users]]` of a jail file: decoding, defaults and every refusal with its position;
/// the jail's own passwd and group rendered from the image's plus these users.
@Suite struct JailUsersSpecTests {
    func summaries(_ source: String) -> [String] {
        let (_, diagnostics) = SpecLoader.parseJail(source: source, file: "Jails/web.toml", name: "web")
        return diagnostics.map { "\($0.line):\($0.column) \($0.field): \($0.message)" }
    }

    let head = """
        image = "shell"
        command = ["/bin/sh"]
        [[volumes]]
        source = "/srv/web"
        target = "/home"

        """

    @Test func usersDecode() throws {
        let source = head + """
            [[users]]
            name = "app"
            uid = 1001
            gid = 1001
            home = "/home/./app/"
            shell = "/bin/sh"
            [[users]]
            name = "worker"
            home = "/home"
            """
        let (jail, diagnostics) = SpecLoader.parseJail(source: source, file: "Jails/web.toml", name: "web")
        #expect(diagnostics.isEmpty)
        let spec = try #require(jail)
        #expect(spec.users == [JailUserSpec(name: "app", uid: 1001, gid: 1001, home: "/home/app", shell: "/bin/sh"),
                               JailUserSpec(name: "worker", home: "/home")])
    }

    @Test func badUsersAreRefusedWithPositions() {
        let source = head + """
            [[users]]
            name = "App"
            home = "/home/a"
            [[users]]
            name = "root"
            home = "/home/r"
            [[users]]
            name = "app"
            uid = 0
            home = "/srv/app"
            [[users]]
            name = "app"
            home = "/home/b"
            [[users]]
            name = "b"
            uid = 1002
            home = "/home/b"
            homedir = "/x"
            [[users]]
            name = "c"
            uid = 1002
            home = "/home/c"
            [[users]]
            name = "d"
            home = "/home/d:0:0::/root"
            shell = "/bin/sh\\nevil:x:0:0::/:/bin/sh"
            """
        #expect(summaries(source) == [
            "7:8 users[0].name: \"App\" is not a valid user name",
            "10:8 users[1].name: \"root\" is a user every image has",
            "14:7 users[2].uid: 0 is out of range",
            "15:8 users[2].home: /srv/app is not inside a writable volume of the jail (writable volumes: /home)",
            "17:8 users[3].name: user \"app\" is already defined by users[2]",
            "23:1 users[4].homedir: unknown key in a user",
            "26:7 users[5].uid: uid 1002 is already taken by users[4]",
            "30:8 users[6].home: a home may not contain \":\" or control characters",
            "31:9 users[6].shell: a shell may not contain \":\" or control characters",
        ])
    }

    @Test func aReadonlyVolumeIsNoHome() {
        let source = """
            image = "shell"
            command = ["/bin/sh"]
            [[volumes]]
            source = "/srv/web"
            target = "/home"
            readonly = true
            [[users]]
            name = "app"
            home = "/home/app"
            """
        #expect(summaries(source) == [
            "9:8 users[0].home: /home/app is not inside a writable volume of the jail (the jail has no writable volume)",
        ])
    }

    @Test func aNameOtherJailsOfTheImageRunAsIsRefused() {
        var set = SpecSet()
        set.jails["a"] = JailSpec(name: "a", file: "Jails/a.toml", image: "shell", command: ["/bin/sh"], user: .name("www-data"), hostname: "a")
        var b = JailSpec(name: "b", file: "Jails/b.toml", image: "shell", command: ["/bin/sh"], user: .name("www-data"), hostname: "b")
        b.users = [JailUserSpec(name: "www-data", home: "/home/w")]
        set.jails["b"] = b
        let source = "image = \"shell\"\n[[users]]\nname = \"www-data\"\n"
        let out = SpecLoader.checkJailUsers(set: &set, maps: ["b": ("Jails/b.toml", TOMLSourceMap(source: source))], hostChecks: false)
        #expect(out.map(\.description) == [
            "Jails/b.toml:3:8: error: users[0].name: \"www-data\" is a user of image shell (another of its jails runs as it); a name no jail of image shell uses as user or owner",
        ])
        #expect(set.jails["b"] == nil && set.jails["a"] != nil)
        // The jail's own user does not go into the image.
        #expect(JailManager.identities(of: "shell", in: set).users == ["www-data"])
    }

    @Test func identitiesLeaveJailUsersOutOfTheImage() {
        var set = SpecSet()
        var j = JailSpec(name: "a", file: "Jails/a.toml", image: "shell", command: ["/bin/sh"], user: .name("app"), hostname: "a")
        j.users = [JailUserSpec(name: "app", home: "/home/app")]
        set.jails["a"] = j
        #expect(JailManager.identities(of: "shell", in: set).users == [])
    }

    let image = IdentityFiles(
        users: [.init(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh"),
                .init(name: "nobody", uid: 65534, gid: 65534, home: "/nonexistent", shell: "/usr/sbin/nologin"),
                .init(name: "www-data", uid: 33, gid: 33, home: "/var/www", shell: "/usr/sbin/nologin"),
                .init(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/sh")],
        groups: [.init(name: "root", gid: 0, members: []), .init(name: "nogroup", gid: 65534, members: []),
                 .init(name: "www-data", gid: 33, members: []), .init(name: "alice", gid: 1001, members: [])])

    @Test func jailUsersAreAddedWithFreeIds() throws {
        let ids = try image.adding(jailUsers: [
            JailUserSpec(name: "app", home: "/home/app"),
            JailUserSpec(name: "web", uid: 1002, gid: 33, home: "/srv", shell: "/bin/sh"),
            JailUserSpec(name: "job", uid: 2000, gid: 1003, home: "/home/job"),
        ])
        // app: uid 1001 is alice's and 1002 web's, so 1003; gid 1003 is job's, so the
        // first free group id (1002: groups and users are apart).
        #expect(ids.passwd == """
            root:x:0:0::/root:/bin/sh
            nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin
            www-data:x:33:33::/var/www:/usr/sbin/nologin
            alice:x:1001:1001::/home/alice:/bin/sh
            app:x:1003:1002::/home/app:/usr/sbin/nologin
            web:x:1002:33::/srv:/bin/sh
            job:x:2000:1003::/home/job:/usr/sbin/nologin

            """)
        #expect(ids.group == """
            root:x:0:
            nogroup:x:65534:
            www-data:x:33:
            alice:x:1001:
            app:x:1002:
            job:x:1003:

            """)
        let r = ids.resolve(user: "app", uid: nil, group: nil, gid: nil)
        #expect(r?.uid == 1003 && r?.gid == 1002 && r?.home == "/home/app")
    }

    @Test func jailUsersMayNotRedefineImageUsers() {
        #expect(throws: IdentityFiles.JailUserClash.self) { try image.adding(jailUsers: [JailUserSpec(name: "alice", home: "/h")]) }
        #expect(throws: IdentityFiles.JailUserClash(description: "user app: uid 33 is already user www-data of the image")) {
            try image.adding(jailUsers: [JailUserSpec(name: "app", uid: 33, home: "/h")])
        }
        // A new group of the user's name would clash with the image's www-data group... here
        // by name only, as the user name is free in passwd.
        var noUser = image
        noUser.users.removeAll { $0.name == "www-data" }
        #expect(throws: IdentityFiles.JailUserClash.self) { try noUser.adding(jailUsers: [JailUserSpec(name: "www-data", home: "/h")]) }
    }
}

/// `idmap` of a volume: decoded, and refused without the jail's user namespace.
@Suite struct IdmapSpecTests {
    @Test func idmapNeedsUserns() throws {
        let volume = "image = \"shell\"\ncommand = [\"/bin/sh\"]\n[[volumes]]\nsource = \"/srv/a\"\ntarget = \"/a\"\nidmap = true\n"
        let (jail, ok) = SpecLoader.parseJail(source: "userns = true\n" + volume, file: "Jails/web.toml", name: "web")
        #expect(ok.isEmpty)
        #expect(jail?.volumes.first?.idmap == true)
        let (_, bad) = SpecLoader.parseJail(source: volume, file: "Jails/web.toml", name: "web")
        #expect(bad.map(\.description) == [
            "Jails/web.toml:6:9: error: volumes[0].idmap: an idmapped volume needs the jail's user namespace; add userns = true to the jail, or remove idmap",
        ])
    }

    @Test func anIdmappedVolumeIsOneStepInThePlan() {
        let ops = MountPlanner.plan(root: "/r", image: "/i", volumes: [PlannedVolume(source: "/srv/a", target: "/a", readonly: true, idmap: true)])
        let last = ops.last
        #expect(last?.kind == .idmappedBind && last?.describe(root: "/r") == "bind /srv/a on /a (idmapped,ro,nosuid,nodev,rec)")
        #expect(!ops.contains { $0.target == "/r/a" && $0.kind == .remount })
    }
}
