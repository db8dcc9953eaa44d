import Testing

@testable import JailKit

@Suite struct DoctorTests {
    let pool = IPv4Network("10.88.0.0/16") ?? IPAM.defaultPool

    func run(_ facts: Doctor.HostFacts) -> [String] {
        Doctor.findings(facts, pool: pool, ourTable: "jailctl_j1234abc", interfacePrefix: "jc1234")
            .map { "\($0.severity.rawValue): \($0.what)" }
    }

    @Test func aHealthyHost() {
        #expect(run(Doctor.HostFacts(ipForward: true)) == ["ok: net.ipv4.ip_forward is 1", "ok: cgroups: v2"])
    }

    @Test func whatBreaksTheRules() {
        let ruleset = """
            table inet jailctl_j1234abc {
            \tchain forward {
            \t\ttype filter hook forward priority filter; policy drop;
            \t}
            }
            table ip filter {
            \tchain FORWARD {
            \t\ttype filter hook forward priority filter; policy drop;
            \t}
            \tchain INPUT {
            \t\ttype filter hook input priority filter; policy drop;
            \t}
            }
            """
        let found = run(Doctor.HostFacts(ipForward: false, brNetfilter: true, ruleset: ruleset,
                                         routes: ["10.88.5.0/24 dev docker0", "10.88.0.2/31 dev jc1234abcdef", "0.0.0.0/0 dev eth0", "10.0.0.0/8 dev eth1"],
                                         userNamespaces: false, cgroups: nil))
        #expect(found.count == 6)
        #expect(found[0].hasPrefix("warning: net.ipv4.ip_forward is 0"))
        #expect(found[1].hasPrefix("warning: br_netfilter is loaded"))
        #expect(found[2].hasPrefix("problem: table ip filter chain FORWARD drops forwarded packets"))
        #expect(found[3].hasPrefix("problem: route 10.88.5.0/24 via docker0 overlaps the jail pool"))
        #expect(found[4].hasPrefix("warning: user namespaces are off"))
        #expect(found[5].hasPrefix("problem: no usable cgroup hierarchy"))
        // Wider routes (the default route, 10/8) lose to the jails' /31 routes: no conflict.
    }
}
