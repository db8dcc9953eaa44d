#if canImport(Glibc)
import Glibc
#endif

/// Host ports across jail files: two jails cannot forward one host port (the dnat map
/// would pick one silently), and a port a host process listens on would be shadowed by
/// the forward (a warning: the sysadmin may mean it).
extension SpecLoader {
    static func checkPorts(set: inout SpecSet, maps: [String: (String, TOMLSourceMap)], hostChecks: Bool,
                           listening scan: Bool) -> [SpecDiagnostic] {
        var out: [SpecDiagnostic] = []
        var claimed: [(port: PortForward, jail: String, index: Int)] = []
        let listening = scan ? HostPorts.listening() : []
        var bad: Set<String> = []
        for name in set.jails.keys.sorted() {
            guard let jail = set.jails[name], jail.network.mode == .private, let (file, map) = maps[name] else { continue }
            var context = SpecContext(file: file, map: map, hostChecks: hostChecks)
            for (i, p) in jail.network.ports.enumerated() {
                let path = TOMLKeyPath.root.appending("network").appending("ports").appending(index: i)
                if let other = claimed.first(where: { $0.port.overlaps(p) }) {
                    context.report(path, "host port \(p.hostPort)/\(p.proto.rawValue) is already forwarded by jail \(other.jail) (network.ports[\(other.index)] of \(maps[other.jail]?.0 ?? other.jail))",
                                   valid: "another host port, or a distinct host address for each")
                    bad.insert(name)
                    continue
                }
                claimed.append((p, name, i))
                if listening.contains(where: { $0.proto == p.proto && $0.port == p.hostPort && (p.hostAddress == nil || $0.address == nil || $0.address == p.hostAddress) }) {
                    context.report(path, "host port \(p.hostPort)/\(p.proto.rawValue) is in use by a host process; the forward hides it from clients",
                                   valid: "a free host port", severity: .warning)
                }
            }
            out += context.diagnostics
        }
        for name in bad { set.jails[name] = nil }
        return sorted(out)
    }
}

extension PortForward {
    /// Same protocol and port, and addresses that can meet (none given means all).
    func overlaps(_ o: PortForward) -> Bool {
        proto == o.proto && hostPort == o.hostPort && (hostAddress == nil || o.hostAddress == nil || hostAddress == o.hostAddress)
    }
}

/// Sockets of the host that wait for connections (TCP LISTEN) or datagrams (bound UDP),
/// from /proc/net; an address of nil is the wildcard.
enum HostPorts {
    struct Bound: Equatable {
        var proto: L4Proto
        var address: IPv4Address?
        var port: UInt16
    }

    static func listening() -> [Bound] {
        parse(tcp: (try? FS.readText("/proc/net/tcp")) ?? "", tcp6: (try? FS.readText("/proc/net/tcp6")) ?? "",
              udp: (try? FS.readText("/proc/net/udp")) ?? "", udp6: (try? FS.readText("/proc/net/udp6")) ?? "")
    }

    /// Lines like "0: 0100007F:1F90 00000000:0000 0A ...": local address (hex, host byte
    /// order as the kernel prints it) and port, state 0A = LISTEN (tcp), 07 = bound (udp).
    static func parse(tcp: String, tcp6: String, udp: String, udp6: String) -> [Bound] {
        var out: [Bound] = []
        func scan(_ text: String, _ proto: L4Proto, state: String, v6: Bool) {
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ")
                guard f.count > 3, f[3] == state else { continue }
                let local = f[1].split(separator: ":")
                guard local.count == 2, let port = UInt16(local[1], radix: 16) else { continue }
                var address: IPv4Address?
                if v6 {
                    // Only the wildcard (::) and IPv4-mapped loopback matter to IPv4 forwards.
                    if local[0] != "00000000000000000000000000000000" { continue }
                } else if let raw = UInt32(local[0], radix: 16), raw != 0 {
                    address = IPv4Address(raw.byteSwapped)
                }
                let b = Bound(proto: proto, address: address, port: port)
                if !out.contains(b) { out.append(b) }
            }
        }
        scan(tcp, .tcp, state: "0A", v6: false)
        scan(tcp6, .tcp, state: "0A", v6: true)
        scan(udp, .udp, state: "07", v6: false)
        scan(udp6, .udp, state: "07", v6: true)
        return out
    }
}
