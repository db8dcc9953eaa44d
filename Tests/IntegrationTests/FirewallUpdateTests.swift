import Glibc
import Testing

@testable import JailKit

/// One jail's `up`/`down` firewall change (JailManager.updateFirewall) with many jails
/// attached, in a host namespace the test makes. The attached jails are run-directory
/// records and table elements only (no veths, no processes): the firewall path reads
/// nothing else. Pool 10.92.0.0/16, host ports 18700-18799.
@Suite("Firewall updates (root)", .serialized)
struct FirewallUpdateTests {
    /// A state root, a manager whose network lives in a namespace of its own, and the
    /// jails written into the run directory.
    final class Host {
        let dir: TempDir
        let netns: String
        let manager: JailManager

        init(inProcessNFT: Bool = true) throws {
            try requireRoot()
            dir = try TempDir("fw")
            netns = "jtfw" + String(UInt32.random(in: 0..<(1 << 20)), radix: 16)
            #expect(run(["/usr/sbin/ip", "netns", "add", netns]) == 0)
            try FS.mkdirs(dir.path + "/specs")
            manager = try JailManager(root: StateRoot(path: dir.path + "/state"), specsDirectory: dir.path + "/specs")
            manager.network = NetworkManager(instance: manager.root.instance, store: manager.state,
                                             pool: IPAM.defaultPool, hostNetns: "/run/netns/" + netns,
                                             inProcessNFT: inProcessNFT)
        }

        /// Writes what `up` records for an attached jail: interface and address, policy.
        func attach(_ name: String, address: String, interface: String, policy: NetworkSpec) throws {
            let run = manager.root.jailRun(name)
            try LinkIndex(root: manager.root).record(jail: name, links: policy.links)
            try FS.mkdirs(run)
            try FS.writeAtomically(run + "/network", "\(interface) \(address)\n", mode: 0o600)
            try FS.writeAtomically(run + "/firewall", FirewallPolicy.render(policy), mode: 0o600)
        }

        func detach(_ name: String) throws { try FS.removeTree(manager.root.jailRun(name)) }

        /// What `down` does: the record goes, then the elements, then the hints.
        func down(_ jail: NetworkJail) throws {
            try detach(jail.name)
            try manager.updateFirewall(.delete, jail: jail)
            try LinkIndex(root: manager.root).forget(jail: jail.name, links: jail.links)
        }

        /// The table as the kernel holds it, elements sorted, so that two equal states
        /// compare equal whatever order they were made in.
        func table() throws -> String {
            let text = try manager.network.nft.query(["list", "table", "inet", manager.network.ruleset.table])
            return Self.normalized(text)
        }

        static func normalized(_ text: String) -> String {
            // nft prints elements comma-separated over several lines: one per line, sorted.
            var out: [String] = []
            var inElements = false
            var elements: [String] = []
            for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let line = trim(raw)
                if line.hasPrefix("elements = {") {
                    inElements = true
                    elements = []
                    let rest = line.dropFirst("elements = {".count)
                    elements += rest.split(separator: ",").map(trim)
                } else if inElements {
                    elements += line.split(separator: ",").map(trim)
                } else {
                    out.append(line)
                }
                if inElements && line.hasSuffix("}") {
                    inElements = false
                    elements = elements.map { $0.hasSuffix("}") ? trim($0.dropLast()) : $0 }
                        .filter { !$0.isEmpty }
                    out.append("elements = { " + elements.sorted().joined(separator: ", ") + " }")
                }
            }
            return out.joined(separator: "\n")
        }

        static func trim<S: StringProtocol>(_ s: S) -> String {
            String(s.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
        }

        func destroy() {
            do { try manager.network.teardown() } catch { Issue.record("teardown: \(error)") }
            manager.network.nft.release()
            run(["/usr/sbin/ip", "netns", "del", netns])
            dir.remove()
        }
    }

    static func spec(ports: [String] = [], links: [String] = [], egress: NetworkSpec.Egress = .nat) -> NetworkSpec {
        var s = NetworkSpec()
        s.mode = .private
        s.ports = ports.compactMap { if case .success(let p) = NetworkSchema.parsePort($0) { return p } else { return nil } }
        s.links = links.compactMap { if case .success(let l) = NetworkSchema.parseLink($0) { return l } else { return nil } }
        s.egress = egress
        return s
    }

    /// The address of filler jail `i` (odd: the jail end of a /31).
    static func address(_ i: Int) -> String { "10.92.\((2 * i + 3) >> 8).\((2 * i + 3) & 255)" }

    /// Filler jail `i`: a forward keyed on its own address (so every filler has one
    /// forward and all keys differ within 18700-18799), a link to the previous filler.
    static func filler(_ i: Int) -> NetworkSpec {
        spec(ports: ["\(address(i)):\(18700 + i % 90):80/tcp"], links: i > 0 ? ["f\(i - 1):5432/tcp"] : [])
    }

    /// `up` as far as the firewall goes: hints and record written, elements in.
    func up(_ h: Host, _ name: String, _ i: Int, _ policy: NetworkSpec) throws {
        try h.attach(name, address: Self.address(i), interface: "jcfw\(name)", policy: policy)
        try h.manager.updateFirewall(.add, jail: try #require(h.manager.attachedJail(name)))
    }

    func down(_ h: Host, _ name: String) throws {
        try h.down(try #require(h.manager.attachedJail(name)))
    }

    /// After any sequence of element updates the kernel holds what a full render loaded
    /// from scratch holds, through libnftables and through the nft program.
    @Test(arguments: [true, false]) func elementUpdatesLeaveWhatAFullRenderMakes(inProcess: Bool) throws {
        let h = try Host(inProcessNFT: inProcess)
        defer { h.destroy() }
        let m = h.manager
        func expectFullRenderState(_ step: String) throws {
            let fast = try h.table()
            #expect(fast.contains("elements = {"), "after \(step): no elements at all?\n\(fast)")
            try m.applyFirewall()
            let full = try h.table()
            #expect(fast == full, "after \(step): element updates\n\(fast)\nfull render\n\(full)")
        }
        let allow = NetworkSpec.Egress.allow([EgressRule(network: IPv4Network("0.0.0.0/0") ?? IPAM.defaultPool, port: 53),
                                              EgressRule(network: IPv4Network("192.0.2.0/24") ?? IPAM.defaultPool)])
        let policies: [(String, NetworkSpec)] = [
            ("web", Self.spec(ports: ["18700:80/tcp", "127.0.0.1:18701:80/tcp"], links: ["db:5432/tcp", "cache:6379/tcp"])),
            ("db", Self.spec(links: ["web:80/tcp"], egress: .none)),
            ("cache", Self.spec(ports: ["18702:6379/udp"], egress: allow)),
            ("php", Self.spec(links: ["db:5432/tcp", "php:9000/tcp"], egress: allow)),
            ("mail", Self.spec(ports: ["18703:25/tcp"], links: ["gone:1/tcp"])),
        ]
        for (i, (name, p)) in policies.enumerated() {
            try up(h, name, i, p)
            try expectFullRenderState("up \(name)")
        }
        for name in ["db", "php", "web"] {
            try down(h, name)
            try expectFullRenderState("down \(name)")
        }
        try up(h, "db", 1, policies[1].1)
        try up(h, "web", 0, policies[0].1)
        try expectFullRenderState("db and web up again")
        for name in ["web", "db", "cache"] { try down(h, name) }
        try expectFullRenderState("all but mail down")
        // The last one takes the table with it.
        try down(h, "mail")
        #expect(try !m.network.leaks().table)
    }

    /// Jails attached by a jailctl without the link index (no hints): the first change
    /// reads every record, so links to a leaving jail still go, and marks the index.
    @Test func stateRootWithoutLinkIndexScansOnce() throws {
        let h = try Host()
        defer { h.destroy() }
        let m = h.manager
        try up(h, "db", 0, Self.spec())
        try up(h, "web", 1, Self.spec(links: ["db:5432/tcp"]))
        try FS.removeTree(h.dir.path + "/state/links")
        try down(h, "db")
        let listed = try m.network.nft.query(["list", "table", "inet", m.network.ruleset.table])
        #expect(!listed.contains(Self.address(0)), "\(listed)")
        #expect(LinkIndex(root: m.root).isComplete)
        #expect(try LinkIndex(root: m.root).linkers(of: "db") == ["web"])
    }

    /// A change that does not apply (the table was changed by hand) loads the whole table.
    @Test(arguments: [true, false]) func failedElementChangeFallsBackToTheWholeTable(inProcess: Bool) throws {
        let h = try Host(inProcessNFT: inProcess)
        defer { h.destroy() }
        let m = h.manager
        let table = m.network.ruleset.table
        try up(h, "web", 0, Self.spec(ports: ["18710:80/tcp"]))
        try up(h, "db", 1, Self.spec())
        // Another process (so a kept libnftables context must notice the change).
        let someone = NFT(netnsPath: "/run/netns/" + h.netns, inProcess: false)
        // Someone removed one of db's elements: its delete cannot apply as one transaction.
        try someone.apply("delete element inet \(table) egress_nat { \(Self.address(1)) }\n")
        try down(h, "db")
        var listed = try m.network.nft.query(["list", "table", "inet", table])
        #expect(!listed.contains(Self.address(1)) && listed.contains("18710"), "\(listed)")
        // Someone deleted the table: the next add brings all of it back.
        try someone.apply("delete table inet \(table)\n")
        try up(h, "db", 1, Self.spec())
        listed = try m.network.nft.query(["list", "table", "inet", table])
        #expect(listed.contains(Self.address(1)) && listed.contains("18710"), "\(listed)")
    }

    /// Times `updateFirewall` for one jail with a forward at each count of attached jails
    /// (JAILCTL_NET_FORWARDS, e.g. "10,1000,5000"; default "10,200"), medians of a few
    /// rounds, with where the time goes.
    @Test func elementUpdateTimings() throws {
        // JAILCTL_NFT_PROGRAM=1: through the nft program, for comparison.
        let h = try Host(inProcessNFT: getenv("JAILCTL_NFT_PROGRAM") == nil)
        defer { h.destroy() }
        let counts = (getenv("JAILCTL_NET_FORWARDS").map { String(cString: $0) } ?? "10,200").split(separator: ",").compactMap { Int($0) }
        let rounds = getenv("JAILCTL_NET_ROUNDS").map { String(cString: $0) }.flatMap { Int($0) } ?? 11
        let m = h.manager
        // The measured jail: two forwards, egress, a link to a filler, and two fillers
        // that link to it (their link elements come and go with it).
        let webPolicy = Self.spec(ports: ["18799:80/tcp", "127.0.0.1:18798:80/tcp"], links: ["f1:5432/tcp"])
        var made = 0
        for n in counts {
            while made < n {
                var p = Self.filler(made)
                if made == 2 || made == 3 { p.links.append(JailLink(jail: "web", port: 80, proto: .tcp)) }
                try h.attach("f\(made)", address: Self.address(made), interface: "jcfw\(String(made, radix: 16))", policy: p)
                made += 1
            }
            try m.applyFirewall()
            var add: [Double] = [], del: [Double] = [], read: [Double] = [], diff: [Double] = [], apply: [Double] = []
            for _ in 0..<rounds {
                try h.attach("web", address: "10.92.255.1", interface: "jcfwweb", policy: webPolicy)
                let web = try #require(m.attachedJail("web"))
                var t = monotonic()
                try m.updateFirewall(.add, jail: web)
                add.append(monotonic() - t)
                t = monotonic()
                try h.down(web)
                del.append(monotonic() - t)
                // The parts, one by one.
                t = monotonic()
                _ = try m.anotherJailAttached(than: "web")
                let others = try m.linkedJails(web)
                read.append(monotonic() - t)
                t = monotonic()
                let text = m.network.ruleset.elementDiff(.add, jail: web, others: others)
                diff.append(monotonic() - t)
                t = monotonic()
                try m.network.nft.apply(text)
                apply.append(monotonic() - t)
                try m.network.nft.apply(m.network.ruleset.elementDiff(.delete, jail: web, others: others))
            }
            func med(_ xs: [Double]) -> String { String(format: "%.2f ms", xs.sorted()[xs.count / 2] * 1000) }
            print("firewall update (\(n) jails, \(n) forwards): add \(med(add)), remove \(med(del)); parts of an add: read linked jails \(med(read)), element diff \(med(diff)), nft apply \(med(apply))")
        }
    }
}
