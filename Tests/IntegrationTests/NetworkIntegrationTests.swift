import Glibc
import Testing

@testable import JailKit

/// Network attach, forwards and the firewall against the real kernel, entirely inside
/// namespaces the test makes: a "host" namespace (where jailctl's table and veths live,
/// and the only place ip_forward is switched on), one namespace per jail, and a "client"
/// namespace on the host's uplink. The machine's own network is never touched.
@Suite("Network (root)", .serialized)
struct NetworkIntegrationTests {
    /// A test world; `close()` removes every namespace it made.
    final class World {
        let tag: String
        var namespaces: [String] = []
        var servers: [pid_t] = []
        let dir: TempDir
        let store: StateStore

        init() throws {
            tag = "jt" + String(UInt32.random(in: 0..<(1 << 20)), radix: 16)
            dir = try TempDir("net")
            store = try StateStore(path: dir.path + "/state.db")
        }

        func ns(_ suffix: String) -> String { tag + suffix }
        func path(_ suffix: String) -> String { "/run/netns/" + ns(suffix) }

        @discardableResult
        func add(_ suffix: String) -> String {
            let name = ns(suffix)
            #expect(run(["/usr/sbin/ip", "netns", "add", name]) == 0)
            namespaces.append(name)
            sh(suffix, "ip link set lo up")
            return name
        }

        /// `cmd` through /bin/sh inside the namespace; returns the exit status.
        @discardableResult
        func sh(_ suffix: String, _ cmd: String) -> Int32 {
            run(["/usr/bin/nsenter", "--net=\(path(suffix))", "/bin/sh", "-c", cmd])
        }

        /// Output and status of `cmd` inside the namespace.
        func output(_ suffix: String, _ cmd: String) -> (Int32, String) {
            var fds: [Int32] = [0, 0]
            pipe(&fds)
            let status = run(["/usr/bin/nsenter", "--net=\(path(suffix))", "/bin/sh", "-c", cmd], stdout: fds[1])
            close(fds[1])
            let out = readPipe(fds[0])
            close(fds[0])
            return (status, out.trimmingSuffixNewlines())
        }

        /// A TCP server answering each connection with the client's address, in the background.
        func server(_ suffix: String, port: Int) {
            let code = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',\(port)))\ns.listen(16)\nwhile True:\n c,a=s.accept()\n c.sendall(a[0].encode())\n c.close()\n"
            let argv = ["/usr/bin/nsenter", "--net=\(path(suffix))", "/usr/bin/python3", "-c", code]
            var pid: pid_t = 0
            let cargs = argv.map { strdup($0) } + [nil]
            defer { for p in cargs { free(p) } }
            if posix_spawn(&pid, argv[0], nil, nil, cargs, environ) == 0 { servers.append(pid) }
            // Ready when it accepts on its own loopback.
            for _ in 0..<50 where connect(suffix, "127.0.0.1", port).0 != 0 { usleep(20_000) }
        }

        /// As `server`, on IPv6 only (the peer's IPv6 address in its reply).
        func server6(_ suffix: String, port: Int) {
            let code = "import socket\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)\ns.bind(('::',\(port)))\ns.listen(16)\nwhile True:\n c,a=s.accept()\n c.sendall(a[0].encode())\n c.close()\n"
            let argv = ["/usr/bin/nsenter", "--net=\(path(suffix))", "/usr/bin/python3", "-c", code]
            var pid: pid_t = 0
            let cargs = argv.map { strdup($0) } + [nil]
            defer { for p in cargs { free(p) } }
            if posix_spawn(&pid, argv[0], nil, nil, cargs, environ) == 0 { servers.append(pid) }
            for _ in 0..<50 where connect(suffix, "::1", port).0 != 0 { usleep(20_000) }
        }

        /// Connects and returns (status, what the server said: the address it saw).
        func connect(_ suffix: String, _ address: String, _ port: Int, from source: String? = nil) -> (Int32, String) {
            let src = source.map { ", source_address=('\($0)', 0)" } ?? ""
            return output(suffix, "/usr/bin/python3 -c \"import socket; s=socket.create_connection(('\(address)', \(port)), timeout=0.5\(src)); print(s.recv(100).decode())\" 2>/dev/null")
        }

        func destroy() {
            for pid in servers {
                kill(pid, SIGKILL)
                var st: Int32 = 0
                waitpid(pid, &st, 0)
            }
            for n in namespaces { run(["/usr/sbin/ip", "netns", "del", n]) }
            dir.remove()
        }
    }

    /// host ns with ip_forward and an uplink to a client ns (192.0.2.0/24 and, with
    /// IPv6 forwarding, fd6a:6c00:91:c::/64).
    func makeWorld() throws -> World {
        let w = try World()
        w.add("h")
        w.add("c")
        w.sh("h", "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 && ip link add up0 type veth peer name up0c netns \(w.ns("c")) && ip addr add 192.0.2.1/24 dev up0 && ip addr add fd6a:6c00:91:c::1/64 dev up0 nodad && ip link set up0 up")
        w.sh("c", "ip addr add 192.0.2.2/24 dev up0c && ip addr add fd6a:6c00:91:c::2/64 dev up0c nodad && ip link set up0c up && ip route add default via 192.0.2.1 && ip -6 route add default via fd6a:6c00:91:c::1")
        return w
    }

    func manager(_ w: World, instance: String = "j7e57abc", pool6: IPv6Network? = nil) -> NetworkManager {
        NetworkManager(instance: instance, store: w.store, pool6: pool6, hostNetns: w.path("h"))
    }

    func privateSpec(ports: [String] = [], links: [String] = [], egress: NetworkSpec.Egress = .nat) -> NetworkSpec {
        var s = NetworkSpec()
        s.mode = .private
        s.ports = ports.compactMap { if case .success(let p) = NetworkSchema.parsePort($0) { return p } else { return nil } }
        s.links = links.compactMap { if case .success(let l) = NetworkSchema.parseLink($0) { return l } else { return nil } }
        s.egress = egress
        return s
    }

    @Test func forwardsLinksAntiSpoofingAndCleanup() throws {
        try requireRoot()
        let w = try makeWorld()
        defer { w.destroy() }
        let net = manager(w)
        defer { try? net.teardown() }
        w.add("a")
        w.add("b")
        let specA = privateSpec(ports: ["8080:80/tcp", "127.0.0.1:8081:80/tcp"])
        var specB = privateSpec(egress: .none)
        let a = try net.attach(jail: "a", netnsPath: w.path("a"), spec: specA)
        let b = try net.attach(jail: "b", netnsPath: w.path("b"), spec: specB)
        #expect(a.jailAddress == "10.88.0.3" && a.hostAddress == "10.88.0.2")
        #expect(b.jailAddress == "10.88.0.5")
        #expect(w.output("a", "ip -4 -o addr show dev eth0 | awk '{print $4}'").1 == "10.88.0.3/31")
        #expect(w.output("a", "ip route show default").1.hasPrefix("default via 10.88.0.2 dev eth0"))

        func entries() -> [NetworkJail] {
            [a.firewallEntry(specA), b.firewallEntry(specB)].compactMap { $0 }
        }
        try net.apply(net.render(jails: entries()))

        // The jail reaches its gateway; nothing else of the host.
        #expect(w.sh("a", "busybox ping -c1 -W1 10.88.0.2 >/dev/null") == 0)
        w.server("h", port: 9999)
        #expect(w.connect("a", "10.88.0.2", 9999).0 != 0)
        #expect(w.connect("a", "192.0.2.1", 9999).0 != 0)

        // A remote client reaches the forwarded port and the jail sees the client's address.
        w.server("a", port: 80)
        let seen = w.connect("c", "192.0.2.1", 8080)
        #expect(seen.0 == 0 && seen.1 == "192.0.2.2")
        // Hairpin from the host itself, on its own address.
        #expect(w.connect("h", "192.0.2.1", 8080).0 == 0)
        // A localhost forward: only on 127.0.0.1, and it reaches the jail (masqueraded to
        // the host side, since 127/8 cannot be a source on the wire).
        let local = w.connect("h", "127.0.0.1", 8081)
        #expect(local.0 == 0 && local.1 == "10.88.0.2")
        #expect(w.connect("c", "192.0.2.1", 8081).0 != 0)

        // Jail b cannot reach jail a's port directly, until it is linked.
        #expect(w.connect("b", "10.88.0.3", 80).0 != 0)
        specB.links = [JailLink(jail: "a", port: 80, proto: .tcp)]
        try net.apply(net.render(jails: entries()))
        let linked = w.connect("b", "10.88.0.3", 80)
        #expect(linked.0 == 0 && linked.1 == "10.88.0.5")

        // Egress: a (nat) reaches the client, masqueraded; b (none) does not.
        w.server("c", port: 7000)
        let out = w.connect("a", "192.0.2.2", 7000)
        #expect(out.0 == 0 && out.1 == "192.0.2.1")
        #expect(w.connect("b", "192.0.2.2", 7000).0 != 0)
        // An allowlist lets b reach the listed port only, masqueraded like nat.
        w.server("c", port: 7001)
        specB.egress = .allow([EgressRule(network: try #require(IPv4Network("192.0.2.0/24")), port: 7000, proto: .tcp)])
        try net.apply(net.render(jails: entries()))
        let allowed = w.connect("b", "192.0.2.2", 7000)
        #expect(allowed.0 == 0 && allowed.1 == "192.0.2.1")
        #expect(w.connect("b", "192.0.2.2", 7001).0 != 0)
        #expect(w.connect("a", "192.0.2.2", 7001).0 == 0)
        specB.egress = .none
        try net.apply(net.render(jails: entries()))
        #expect(w.connect("b", "192.0.2.2", 7000).0 != 0)

        // A spoofed source from inside a jail is dropped.
        w.sh("a", "ip addr add 10.88.0.99/32 dev eth0")
        #expect(w.connect("a", "192.0.2.2", 7000, from: "10.88.0.99").0 != 0)
        #expect(w.connect("a", "192.0.2.2", 7000).0 == 0)

        // Element-level change: drop a's forward without reloading the rules.
        try net.removeElements(try #require(a.firewallEntry(specA)))
        #expect(w.connect("c", "192.0.2.1", 8080).0 != 0)
        try net.addElements(try #require(a.firewallEntry(specA)))
        #expect(w.connect("c", "192.0.2.1", 8080).0 == 0)

        // Detach is idempotent; teardown finds whatever is left by name.
        try net.detach(a)
        try net.detach(a)
        #expect(try net.leaks().interfaces == [b.hostInterface])
        try net.teardown()
        try net.teardown()
        #expect(try net.leaks().isEmpty)
    }

    @Test func immediateReattachAndLeaseKept() throws {
        try requireRoot()
        let w = try makeWorld()
        defer { w.destroy() }
        let net = manager(w, instance: "j7e57abd")
        defer { try? net.teardown() }
        let spec = privateSpec()
        var names: Set<String> = []
        for i in 0..<5 {
            // A fresh namespace each round, deleted right after: its veth lingers in the
            // kernel while the next one is made.
            w.add("r\(i)")
            let at = try net.attach(jail: "r", netnsPath: w.path("r\(i)"), spec: spec)
            #expect(at.jailAddress == "10.88.0.3")
            names.insert(at.hostInterface)
            run(["/usr/sbin/ip", "netns", "del", w.ns("r\(i)")])
            w.namespaces.removeAll { $0 == w.ns("r\(i)") }
        }
        #expect(names.count == 5)
        // A failed first attach (no such namespace) leaves no lease; a kept one stays.
        #expect(throws: (any Error).self) { _ = try net.attach(jail: "new", netnsPath: w.path("missing"), spec: spec) }
        #expect(try net.ipam.existing(jail: "new") == nil)
        #expect(throws: (any Error).self) { _ = try net.attach(jail: "r", netnsPath: w.path("missing"), spec: spec) }
        #expect(try net.ipam.existing(jail: "r") != nil)
        try net.teardown()
        #expect(try net.leaks().isEmpty)
    }

    /// Attach and detach time, and one forward's element add/remove, printed for the note.
    /// JAILCTL_NET_JAILS=1000 (scripts/bench) scales it up.
    @Test func timings() throws {
        try requireRoot()
        let w = try makeWorld()
        defer { w.destroy() }
        // JAILCTL_NET_POOL6=1: the same with IPv6 (a /127 each beside the /31).
        let pool6 = getenv("JAILCTL_NET_POOL6") != nil ? IPv6Network("fd6a:6c00:91:4::/64") : nil
        let net = manager(w, instance: "j7e57abe", pool6: pool6)
        defer { try? net.teardown() }
        let count = getenv("JAILCTL_NET_JAILS").flatMap { Int(String(cString: $0)) }.map { max(4, min($0, 4000)) } ?? 100
        var attach: [Double] = []
        var detach: [Double] = []
        var attached: [NetworkAttachment] = []
        let spec = privateSpec(ports: [])
        for i in 0..<count {
            w.add("t\(i)")
            let t0 = monotonic()
            attached.append(try net.attach(jail: "t\(i)", netnsPath: w.path("t\(i)"), spec: spec))
            attach.append(monotonic() - t0)
        }
        var entries = attached.compactMap { $0.firewallEntry(spec) }
        var t0 = monotonic()
        try net.apply(net.render(jails: entries))
        let reload = monotonic() - t0
        var fwd = entries[0]
        fwd.ports = [PortForward(hostPort: 20000, jailPort: 80, proto: .tcp)]
        t0 = monotonic()
        try net.nft.apply("add element inet \(net.ruleset.table) fwd_port { tcp . 20000 : \(fwd.address) . 80 }\n")
        let addFwd = monotonic() - t0
        t0 = monotonic()
        try net.nft.apply("delete element inet \(net.ruleset.table) fwd_port { tcp . 20000 : \(fwd.address) . 80 }\n")
        let delFwd = monotonic() - t0
        entries.removeAll()
        // Half as `down` of a live jail, half after the jail's namespace is gone (its
        // last process exited): the kernel then removes the pair on its own.
        var detachGone: [Double] = []
        for (i, at) in attached.enumerated() {
            if i % 2 == 1 {
                run(["/usr/sbin/ip", "netns", "del", w.ns("t\(i)")])
                w.namespaces.removeAll { $0 == w.ns("t\(i)") }
            }
            let t = monotonic()
            try net.detach(at, jailGone: i % 2 == 1)
            if i % 2 == 1 { detachGone.append(monotonic() - t) } else { detach.append(monotonic() - t) }
        }
        // The kernel's own removal of the pairs left to it.
        t0 = monotonic()
        while !(try net.leaks().interfaces.isEmpty) && monotonic() - t0 < 5 { usleep(1000) }
        let kernelGone = monotonic() - t0
        #expect(try net.leaks().interfaces.isEmpty)
        func median(_ xs: [Double]) -> String {
            let s = xs.sorted()
            return String(Int((s[s.count / 2] * 1e6).rounded())) + " us"
        }
        print("network timings (\(count) jails\(pool6 == nil ? "" : ", IPv4+IPv6")): attach median \(median(attach)), max \(median([attach.max() ?? 0])); detach median \(median(detach)), after the namespace went (left to the kernel) \(median(detachGone)), kernel done with all \(count / 2) after \(median([kernelGone])); full reload \(median([reload])); add forward element \(median([addFwd])); delete \(median([delFwd]))")
        try net.teardown()
        #expect(try net.leaks().isEmpty)
    }
}
