import Glibc
import Testing

@testable import JailKit

@Suite struct IsolationSpecTests {
    func parse(_ extra: String) -> (JailSpec?, [SpecDiagnostic]) {
        SpecLoader.parseJail(source: "image = \"shell\"\ncommand = [\"/bin/sh\"]\n" + extra, file: "j.toml", name: "web")
    }

    @Test func defaultsAreTight() throws {
        let (jail, diagnostics) = parse("")
        #expect(diagnostics.isEmpty)
        let iso = try #require(jail).isolation
        #expect(iso.capabilities.isEmpty)
        #expect(iso.seccomp.profile == .default)
        #expect(iso.filesystem.readonlyRoot)
        #expect(!iso.filesystem.tmpExec)
        #expect(iso.limits.pids == 512)
        #expect(iso.limits.nofile == 1024)
    }

    @Test func decodesEveryKey() throws {
        let (jail, diagnostics) = parse("""
            capabilities = ["NET_BIND_SERVICE", "cap_chown"]
            userns = true
            [seccomp]
            allow = ["ptrace"]
            deny = ["chroot"]
            [limits]
            memory = "256M"
            memory_swap = "1G"
            pids = 128
            cpu = 0.5
            cpu_weight = 50
            nofile = 4096
            nproc = 64
            fsize = 1048576
            tmpfs_size = "16M"
            [filesystem]
            readonly_root = false
            tmp_exec = true
            sys = true
            """)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let iso = try #require(jail).isolation
        #expect(iso.capabilities == ["NET_BIND_SERVICE", "CHOWN"])
        #expect(iso.userns)
        #expect(iso.seccomp.allow == ["ptrace"] && iso.seccomp.deny == ["chroot"])
        #expect(iso.limits.memory == 256 << 20 && iso.limits.memorySwap == 1 << 30)
        #expect(iso.limits.pids == 128 && iso.limits.cpu == 0.5 && iso.limits.cpuWeight == 50)
        #expect(iso.limits.nofile == 4096 && iso.limits.nproc == 64 && iso.limits.fsize == 1_048_576)
        #expect(iso.limits.tmpfsSize == 16 << 20)
        #expect(!iso.filesystem.readonlyRoot && iso.filesystem.tmpExec && iso.filesystem.sys)
    }

    @Test func badValuesArePositioned() {
        let (_, diagnostics) = parse("""
            capabilities = ["NET_BIND_SERVIC", "NOPE_AT_ALL"]
            [limits]
            memory = "lots"
            pids = 0
            cpu = "half"
            [seccomp]
            profile = "strict"
            allow = ["Not-A-Call"]
            [filesystem]
            readonly = false
            """)
        let text = diagnostics.map(\.description)
        #expect(text.contains("j.toml:3:17: error: capabilities[0]: \"NET_BIND_SERVIC\" is not a capability; did you mean \"NET_BIND_SERVICE\"?"))
        #expect(text.contains { $0.hasPrefix("j.toml:3:36: error: capabilities[1]: \"NOPE_AT_ALL\" is not a capability;") })
        #expect(text.contains("j.toml:5:10: error: limits.memory: \"lots\" is not a size; a size like \"256M\", \"1G\", \"512K\" or a number of bytes"))
        #expect(text.contains("j.toml:6:8: error: limits.pids: 0 is out of range; a number of processes, 1-4194304"))
        #expect(text.contains { $0.hasPrefix("j.toml:7:7: error: limits.cpu: expected a number, found") })
        #expect(text.contains { $0.hasPrefix("j.toml:9:11: error: seccomp.profile: \"strict\" is not a seccomp profile") })
        #expect(text.contains { $0.hasPrefix("j.toml:10:10: error: seccomp.allow[0]: \"Not-A-Call\" is not a system call name") })
        #expect(text.contains("j.toml:12:1: error: filesystem.readonly: unknown key in [filesystem]; valid keys in [filesystem]: readonly_root, sys, tmp_exec"))
    }

    @Test func unconfinedIsAWarning() throws {
        let (jail, diagnostics) = parse("[seccomp]\nprofile = \"unconfined\"\n")
        #expect(jail?.isolation.seccomp.profile == .unconfined)
        #expect(diagnostics.count == 1)
        #expect(diagnostics.first?.severity == .warning)
    }

    @Test func sizes() {
        #expect(IsolationSchema.parseSize("512K") == 512 << 10)
        #expect(IsolationSchema.parseSize("2g") == 2 << 30)
        #expect(IsolationSchema.parseSize("100MB") == 100 << 20)
        #expect(IsolationSchema.parseSize("4096") == 4096)
        #expect(IsolationSchema.parseSize("0") == nil)
        #expect(IsolationSchema.parseSize("99999999999T") == nil)
        #expect(IsolationSchema.parseSize("1.5G") == nil)
    }
}

@Suite struct StartOrderTests {
    func set(_ deps: [String: [String]]) -> SpecSet {
        var s = SpecSet()
        for (name, after) in deps {
            var j = JailSpec(name: name, file: "\(name).toml", image: "i", command: ["/bin/true"], hostname: name)
            j.supervision.after = after
            s.jails[name] = j
        }
        return s
    }

    @Test func dependenciesComeFirst() {
        let order = JailManager.startOrder(set(["web": ["db", "cache"], "db": [], "cache": ["db"], "mail": []]))
        #expect(order == ["db", "cache", "mail", "web"])
    }

    @Test func cyclesAndUnknownNamesAreValidateErrors() throws {
        let dir = "/tmp/jailctl-order-\(getpid())"
        defer { try? FS.removeTree(dir) }
        try FS.mkdirs(dir + "/Images")
        try FS.mkdirs(dir + "/Jails")
        try FS.writeAtomically(dir + "/Images/i.toml", "binaries = [\"/bin/true\"]\n")
        try FS.writeAtomically(dir + "/Jails/a.toml", "image = \"i\"\ncommand = [\"/bin/true\"]\nafter = [\"b\"]\n")
        try FS.writeAtomically(dir + "/Jails/b.toml", "image = \"i\"\ncommand = [\"/bin/true\"]\nafter = [\"a\"]\n")
        try FS.writeAtomically(dir + "/Jails/c.toml", "image = \"i\"\ncommand = [\"/bin/true\"]\nafter = [\"nope\"]\n")
        let (set, diagnostics) = SpecLoader.load(directory: dir)
        let text = diagnostics.map(\.description)
        #expect(text.contains { $0.hasSuffix("Jails/c.toml:3:10: error: after[0]: no jail \"nope\"; names of files in Jails/ without .toml") })
        #expect(text.contains { $0.contains("start order has a cycle: a -> b -> a") || $0.contains("start order has a cycle: b -> a -> b") })
        #expect(set.jails.isEmpty)
    }
}
