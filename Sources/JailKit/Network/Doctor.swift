#if canImport(Glibc)
import Glibc
#endif

/// `jailctl doctor`: what on this host would break or bypass jailctl's rules, and what
/// to do. The findings are a pure function of facts gathered separately (`HostFacts`),
/// so every rule is tested without the machine.
public enum Doctor {
    public struct Finding: Sendable, Equatable, Codable {
        public enum Severity: String, Sendable, Codable { case ok, warning, problem }
        public var severity: Severity
        public var what: String
        public var fix: String

        public init(_ severity: Severity, _ what: String, fix: String = "") {
            self.severity = severity
            self.what = what
            self.fix = fix
        }
    }

    public struct HostFacts: Sendable, Equatable {
        public var ipForward: Bool?
        /// net.ipv6.conf.all.forwarding.
        public var ipv6Forward: Bool?
        /// Interfaces that are up (not lo, not ours) with accept_ra = 1: they take router
        /// advertisements only while IPv6 forwarding is off.
        public var acceptRA: [String] = []
        /// net.ipv6.conf.default.disable_ipv6: new interfaces (jails' veths) get no IPv6.
        public var ipv6Disabled = false
        /// IPv6 routes as "PREFIX/LEN dev NAME" (from /proc/net/ipv6_route).
        public var routes6: [String] = []
        public var brNetfilter: Bool
        public var nftAvailable: Bool
        /// `nft list ruleset` text; nil when it could not be read.
        public var ruleset: String?
        /// `ip -4 -o route show` lines.
        public var routes: [String]
        public var userNamespaces: Bool
        public var cgroups: String?

        public init(ipForward: Bool? = nil, brNetfilter: Bool = false, nftAvailable: Bool = true, ruleset: String? = "",
                    routes: [String] = [], userNamespaces: Bool = true, cgroups: String? = "v2") {
            self.ipForward = ipForward
            self.brNetfilter = brNetfilter
            self.nftAvailable = nftAvailable
            self.ruleset = ruleset
            self.routes = routes
            self.userNamespaces = userNamespaces
            self.cgroups = cgroups
        }
    }

    public static func findings(_ f: HostFacts, pool: IPv4Network, pool6: IPv6Network? = nil, ourTable: String,
                                interfacePrefix: String) -> [Finding] {
        var out: [Finding] = []
        if !f.nftAvailable {
            out.append(Finding(.problem, "nft is not installed: private jails cannot get their firewall", fix: "apt-get install nftables"))
        }
        switch f.ipForward {
        case false?:
            out.append(Finding(.warning, "net.ipv4.ip_forward is 0: jails' egress and forwards from other hosts do not pass (forwards from this host do)",
                               fix: "sysctl -w net.ipv4.ip_forward=1, and net.ipv4.ip_forward = 1 in /etc/sysctl.d/ to keep it"))
        case true?: out.append(Finding(.ok, "net.ipv4.ip_forward is 1"))
        case nil: break
        }
        if let pool6 { out += ipv6Findings(f, pool6: pool6, interfacePrefix: interfacePrefix) }
        if f.brNetfilter {
            out.append(Finding(.warning, "br_netfilter is loaded: bridged traffic of other tools passes through the ip hooks too",
                               fix: "jailctl uses no bridge; if nothing else needs it: modprobe -r br_netfilter"))
        }
        for chain in foreignDropChains(f.ruleset ?? "", ourTable: ourTable) {
            out.append(Finding(.problem, "\(chain) drops forwarded packets by default: jails' egress and forwards are dropped there (nftables runs every base chain of a hook; a drop in any of them wins)",
                               fix: "accept traffic of interfaces \(interfacePrefix)* in that chain (e.g. iifname \"\(interfacePrefix)*\" accept; oifname \"\(interfacePrefix)*\" accept), or change its policy"))
        }
        for route in f.routes {
            let fields = route.split(separator: " ")
            guard let dest = fields.first, let net = IPv4Network(String(dest).contains("/") ? String(dest) : "\(dest)/32"),
                  let devIndex = fields.firstIndex(of: "dev"), devIndex + 1 < fields.count else { continue }
            let dev = String(fields[devIndex + 1])
            if dev.hasPrefix(interfacePrefix) { continue }
            // Only a route inside the pool competes with the jails' /31 routes; a wider
            // one (the default route) loses to them.
            if net.prefix >= pool.prefix && pool.contains(net.base) {
                out.append(Finding(.problem, "route \(dest) via \(dev) overlaps the jail pool \(pool): jail addresses may be sent there",
                                   fix: "pick another pool in jailctl.toml ([network] pool = \"10.89.0.0/16\") or remove the route"))
            }
        }
        if !f.userNamespaces {
            out.append(Finding(.warning, "user namespaces are off (user.max_user_namespaces = 0): jails with userns = true cannot start",
                               fix: "sysctl -w user.max_user_namespaces=15000"))
        }
        if let c = f.cgroups { out.append(Finding(.ok, "cgroups: \(c)")) } else {
            out.append(Finding(.problem, "no usable cgroup hierarchy: limits cannot be applied", fix: "mount cgroup2 at /sys/fs/cgroup"))
        }
        return out
    }

    /// Only with a pool6: forwarding, and what turning it on does to router advertisements
    /// (the kernel ignores them on accept_ra = 1 interfaces once forwarding is on, so a
    /// host that gets its own IPv6 route by SLAAC loses it when it expires; Docker hosts
    /// hit this when it switched forwarding on for them).
    static func ipv6Findings(_ f: HostFacts, pool6: IPv6Network, interfacePrefix: String) -> [Finding] {
        if f.ipv6Disabled {
            return [Finding(.problem, "IPv6 is disabled for new interfaces (net.ipv6.conf.default.disable_ipv6 = 1): with a pool6, every private jail's up fails adding its IPv6 address",
                            fix: "sysctl -w net.ipv6.conf.default.disable_ipv6=0, or remove pool6 from jailctl.toml")]
        }
        var out: [Finding] = []
        for route in f.routes6 {
            let fields = route.split(separator: " ")
            guard let dest = fields.first, let net = IPv6Network(String(dest)), fields.count >= 3, fields[1] == "dev" else { continue }
            let dev = String(fields[2])
            // Our own /127s, and lo's local routes of our host-side addresses, are expected.
            if dev.hasPrefix(interfacePrefix) || dev == "lo" { continue }
            if net.prefix >= pool6.prefix && pool6.contains(net.base) {
                out.append(Finding(.problem, "route \(dest) via \(dev) overlaps the jail pool6 \(pool6): jail addresses may be sent there",
                                   fix: "pick another pool6 in jailctl.toml or remove the route"))
            }
        }
        return out + forwardingFindings(f, interfacePrefix: interfacePrefix)
    }

    static func forwardingFindings(_ f: HostFacts, interfacePrefix: String) -> [Finding] {
        let ra = f.acceptRA.filter { !$0.hasPrefix(interfacePrefix) }.sorted()
        let raFix = ra.map { "sysctl -w net.ipv6.conf.\($0).accept_ra=2" }.joined(separator: "; ")
        switch f.ipv6Forward {
        case false?:
            let first = ra.isEmpty ? "" : "first \(raFix) (those interfaces would stop taking router advertisements), then "
            return [Finding(.warning, "net.ipv6.conf.all.forwarding is 0: jails' IPv6 egress and IPv6 forwards from other hosts do not pass (forwards from this host do)",
                            fix: first + "sysctl -w net.ipv6.conf.all.forwarding=1, and keep \(ra.isEmpty ? "it" : "both") in /etc/sysctl.d/")]
        case true?:
            var out = [Finding(.ok, "net.ipv6.conf.all.forwarding is 1")]
            if !ra.isEmpty {
                out.append(Finding(.warning, "IPv6 forwarding is on, so \(ra.joined(separator: ", ")) ignore\(ra.count == 1 ? "s" : "") router advertisements (accept_ra = 1): a route or address learned from them expires and is not renewed",
                                   fix: raFix + ", and in /etc/sysctl.d/"))
            }
            return out
        case nil: return []
        }
    }

    /// "table inet filter / chain forward" of every base chain on the forward hook with
    /// policy drop, outside our table.
    static func foreignDropChains(_ ruleset: String, ourTable: String) -> [String] {
        var out: [String] = []
        var table = "", chain = ""
        for raw in ruleset.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let w = line.split(separator: " ").map(String.init)
            if w.first == "table", w.count >= 3 { table = w[1] + " " + w[2] }
            if w.first == "chain", w.count >= 2 { chain = w[1] }
            if line.contains("hook forward"), line.contains("policy drop"), !table.hasSuffix(" " + ourTable) {
                out.append("table \(table) chain \(chain)")
            }
        }
        return out
    }

    /// Reads the facts of this host (nft through `nft`, the rest from /proc).
    public static func gather(nft: NFT, cgroups: String?) -> HostFacts {
        var f = HostFacts(cgroups: cgroups)
        f.ipForward = (try? FS.readText("/proc/sys/net/ipv4/ip_forward")).map { $0.hasPrefix("1") }
        f.ipv6Forward = (try? FS.readText("/proc/sys/net/ipv6/conf/all/forwarding")).map { $0.hasPrefix("1") }
        f.ipv6Disabled = (try? FS.readText("/proc/sys/net/ipv6/conf/default/disable_ipv6"))?.hasPrefix("1") ?? !FS.exists("/proc/sys/net/ipv6")
        // Only interfaces that are up: a down one learns nothing from advertisements anyway.
        f.acceptRA = ((try? FS.list("/proc/sys/net/ipv6/conf")) ?? []).filter { name in
            !["all", "default", "lo"].contains(name)
                && (try? FS.readText("/proc/sys/net/ipv6/conf/\(name)/accept_ra"))?.hasPrefix("1") == true
                && (try? FS.readText("/sys/class/net/\(name)/operstate"))?.hasPrefix("up") == true
        }
        f.brNetfilter = FS.exists("/proc/sys/net/bridge/bridge-nf-call-iptables")
        f.nftAvailable = FS.exists(nft.nft)
        f.ruleset = f.nftAvailable ? try? nft.query(["list", "ruleset"]) : nil
        f.routes = routes()
        f.routes6 = routes6()
        f.userNamespaces = ((try? FS.readText("/proc/sys/user/max_user_namespaces")).flatMap { Int($0.trimmingSuffixNewlines()) } ?? 1) > 0
        return f
    }

    /// IPv6 routes from /proc/net/ipv6_route: 32 hex digits of destination, its prefix
    /// length in hex, ..., the device last.
    static func routes6() -> [String] {
        guard let text = try? FS.readText("/proc/net/ipv6_route") else { return [] }
        return parseRoutes6(text)
    }

    static func parseRoutes6(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 10, f[0].count == 32, let len = Int(f[1], radix: 16) else { return nil }
            var bytes: [UInt8] = []
            var hex = Substring(f[0])
            while !hex.isEmpty {
                guard let b = UInt8(hex.prefix(2), radix: 16) else { return nil }
                bytes.append(b)
                hex = hex.dropFirst(2)
            }
            return "\(IPv6Address(bytes: bytes))/\(len) dev \(f[9])"
        }
    }

    /// `ip -4 -o route show` in the same form, from /proc/net/route (no ip binary needed).
    static func routes() -> [String] {
        guard let text = try? FS.readText("/proc/net/route") else { return [] }
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard f.count >= 8, let dest = UInt32(f[1], radix: 16), let mask = UInt32(f[7], radix: 16) else { return nil }
            let prefix = mask.nonzeroBitCount
            return "\(IPv4Address(dest.byteSwapped))/\(prefix) dev \(f[0])"
        }
    }
}

