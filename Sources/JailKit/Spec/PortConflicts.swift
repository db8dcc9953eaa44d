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
            let network = TOMLKeyPath.root.appending("network")
            // IPv6 of a jail needs the host's pool6; without it the jail is IPv4 only.
            if set.host.pool6 == nil, case .fixed(let a) = jail.network.address6 {
                context.report(network.appending("address6"), "address6 \(a) needs a pool6 in jailctl.toml; without one jails are IPv4 only",
                               valid: "add [network] pool6 = \"fd6a:6c00:0:1::/64\" to jailctl.toml, or remove address6")
                bad.insert(name)
            }
            for (i, p) in jail.network.ports.enumerated() {
                let path = network.appending("ports").appending(index: i)
                if case .v6(let h)? = p.hostAddress, h != .loopback, set.host.pool6 == nil || jail.network.address6 == NetworkSpec.Address6.none {
                    context.report(path, "a forward from the IPv6 address \(h) needs the jail on IPv6: \(set.host.pool6 == nil ? "jailctl.toml has no pool6" : "its address6 is \"none\"")",
                                   valid: set.host.pool6 == nil ? "add [network] pool6 = \"fd6a:6c00:0:1::/64\" to jailctl.toml" : "address6 = \"auto\"")
                    bad.insert(name)
                    continue
                }
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
        /// nil: a wildcard (0.0.0.0 or ::).
        var address: IPAddress?
        var port: UInt16

        init(proto: L4Proto, ip: IPAddress?, port: UInt16) {
            self.proto = proto
            self.address = ip
            self.port = port
        }

        init(proto: L4Proto, address: IPv4Address?, port: UInt16) {
            self.init(proto: proto, ip: address.map { IPAddress.v4($0) }, port: port)
        }
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
                var address: IPAddress?
                if v6 {
                    guard let a = ipv6(local[0]) else { continue }
                    if a != .unspecified {
                        address = a.isIPv4Mapped ? .v4(IPv4Address(UInt32(truncatingIfNeeded: a.low))) : .v6(a)
                    }
                } else if let raw = UInt32(local[0], radix: 16), raw != 0 {
                    address = .v4(IPv4Address(raw.byteSwapped))
                }
                let b = Bound(proto: proto, ip: address, port: port)
                if !out.contains(b) { out.append(b) }
            }
        }
        scan(tcp, .tcp, state: "0A", v6: false)
        scan(tcp6, .tcp, state: "0A", v6: true)
        scan(udp, .udp, state: "07", v6: false)
        scan(udp6, .udp, state: "07", v6: true)
        return out
    }

    /// /proc/net/*6 addresses: four 32-bit words, each printed in the host's (little
    /// endian) byte order.
    static func ipv6(_ hex: Substring) -> IPv6Address? {
        guard hex.count == 32 else { return nil }
        var bytes: [UInt8] = []
        var rest = hex
        while !rest.isEmpty {
            guard let word = UInt32(rest.prefix(8), radix: 16) else { return nil }
            let be = word.byteSwapped
            bytes += [UInt8(be >> 24), UInt8(be >> 16 & 255), UInt8(be >> 8 & 255), UInt8(be & 255)]
            rest = rest.dropFirst(8)
        }
        return IPv6Address(bytes: bytes)
    }
}
