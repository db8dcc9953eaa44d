/// Settings of the host rather than of one jail: `jailctl.toml` at the top of the spec
/// directory. Every key is optional and the file itself may be absent; the defaults are
/// what a single-uplink host wants.
public struct HostSettings: Sendable, Equatable {
    public static let fileName = "jailctl.toml"

    /// Where jail addresses are leased from (/31 per jail).
    public var pool: IPv4Network = IPAM.defaultPool
    /// Where jails' IPv6 addresses are leased from (/127 per jail); nil: jails are IPv4
    /// only.
    public var pool6: IPv6Network?
    /// Interfaces that NATed egress may leave by; empty: any interface but the jails' own.
    public var uplinks: [String] = []
    /// Name servers written into each jail's /etc/resolv.conf; empty: the host's own
    /// non-loopback name servers (a loopback resolver of the host is not reachable from
    /// a jail's net namespace).
    public var dns: [IPv4Address] = []
    /// argv run once per alert (crash loop, unhealthy, backup too old, ...), with the
    /// alert as JSON on stdin and in JAILCTL_EVENT, JAILCTL_JAIL and JAILCTL_DETAIL; nil:
    /// alerts are events only.
    public var notify: [String]?
    /// The event kinds that run `notify`.
    public var notifyEvents: Set<String> = HostSettings.defaultNotifyEvents
    public static let defaultNotifyEvents: Set<String> = ["crashloop", "unhealthy", "restart-failed", "image-stale", "backup-stale", "backup-quota"]

    public init() {}
}

/// The keys of `jailctl.toml`, table-driven like the jail schema.
enum HostSchema {
    static let poolValid = "a private IPv4 network of /8 to /30 in 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10, e.g. \"10.88.0.0/16\""
    static let pool6Valid = "an IPv6 unique local prefix of /64 to /120 in fd00::/8, e.g. \"fd6a:6c00:0:1::/64\""
    static let uplinkValid = "an interface name or an array of them, e.g. \"eth0\" or [\"eth0\", \"wlan0\"]"
    static let dnsValid = "an array of IPv4 addresses, e.g. [\"192.0.2.53\"]"
    static let notifyValid = "a non-empty array of strings starting with an absolute path, e.g. [\"/usr/local/bin/alert\", \"--jail\"]"

    static let fields: [SpecField<HostSettings>] = [
        SpecField("network", valid: "a table [network] with pool, pool6, uplink, dns") { value, path, host, context in
            guard let table = context.table(value, at: path, valid: "a table [network]") else { return }
            context.decode(table, at: path, fields: networkFields, into: &host, what: "[network]")
        },
        SpecField("supervisor", valid: "a table [supervisor] with notify, notify_events") { value, path, host, context in
            guard let table = context.table(value, at: path, valid: "a table [supervisor]") else { return }
            context.decode(table, at: path, fields: supervisorFields, into: &host, what: "[supervisor]")
        },
    ]

    static let privateRanges: [IPv4Network] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]
        .compactMap { IPv4Network($0) }

    static let networkFields: [SpecField<HostSettings>] = [
        SpecField("pool", valid: poolValid) { value, path, host, context in
            guard let text = context.string(value, at: path, valid: poolValid) else { return }
            guard let pool = IPv4Network(text) else {
                context.report(path, "\"\(text)\" is not an IPv4 network with its host bits zero", valid: poolValid)
                return
            }
            guard (8...30).contains(pool.prefix) else {
                context.report(path, "a /\(pool.prefix) pool is \(pool.prefix > 30 ? "too small for one jail" : "larger than any private range")", valid: poolValid)
                return
            }
            // A public range would route real internet addresses into jails.
            guard privateRanges.contains(where: { $0.contains(pool.base) && $0.contains(pool.last) }) else {
                context.report(path, "\(pool) is not inside a private range", valid: poolValid)
                return
            }
            host.pool = pool
        },
        SpecField("pool6", valid: pool6Valid) { value, path, host, context in
            guard let text = context.string(value, at: path, valid: pool6Valid) else { return }
            guard let pool = IPv6Network(text), !text.contains("%") else {
                context.report(path, "\"\(text)\" is not an IPv6 network with its host bits zero", valid: pool6Valid)
                return
            }
            // /64 at most: leases count within the low 64 bits, which a /64 fills (2^63
            // jails); a shorter prefix would only waste the rest of it. /120: room for
            // 127 jails, beyond which a pool is a typo rather than a plan.
            guard (64...120).contains(pool.prefix) else {
                let hint = pool.prefix < 64 ? "one /64 of it, e.g. \"\(IPv6Network(base: pool.base, prefix: 64))\"" : pool6Valid
                context.report(path, "a /\(pool.prefix) pool6 is \(pool.prefix < 64 ? "more than jailctl uses" : "too small")", valid: hint)
                return
            }
            let a = pool.base
            if a.isLinkLocal || a.isMulticast || a.high == 0 {
                context.report(path, "\(pool) is not a unicast range a jail can use (loopback, IPv4-mapped, link-local or multicast)", valid: pool6Valid)
                return
            }
            // A global prefix works only if this host is routed that prefix, and jails
            // would then be addressable from the internet: a warning, not an error,
            // for the host that has such a routed prefix on purpose.
            if !a.isUniqueLocal {
                context.report(path, "\(pool) is not a unique local (fc00::/7) prefix: jails get global addresses; egress is still masqueraded", valid: pool6Valid, severity: .warning)
            } else if a.high >> 56 == 0xFC {
                context.report(path, "\(pool) is in fc00::/8, which has no assignment rule; ULAs come from fd00::/8", valid: pool6Valid, severity: .warning)
            }
            host.pool6 = pool
        },
        SpecField("uplink", valid: uplinkValid) { value, path, host, context in
            let names: [(text: String, path: TOMLKeyPath)]
            if case .string(let one) = value {
                names = [(one, path)]
            } else {
                guard let many = context.strings(value, at: path, valid: uplinkValid) else { return }
                names = many
            }
            for n in names where !SpecRules.isValidInterfaceName(n.text) {
                context.report(n.path, "\"\(n.text)\" is not an interface name", valid: "1-15 characters, no '/', whitespace or ':'")
                return
            }
            host.uplinks = names.map(\.text)
        },
        SpecField("dns", valid: dnsValid) { value, path, host, context in
            guard let entries = context.strings(value, at: path, valid: dnsValid) else { return }
            var out: [IPv4Address] = []
            for e in entries {
                guard let a = IPv4Address(e.text) else {
                    context.report(e.path, "\"\(e.text)\" is not an IPv4 address", valid: dnsValid)
                    return
                }
                out.append(a)
            }
            host.dns = out
        },
    ]

    static let supervisorFields: [SpecField<HostSettings>] = [
        SpecField("notify", valid: notifyValid) { value, path, host, context in
            guard let argv = context.strings(value, at: path, valid: notifyValid) else { return }
            guard let first = argv.first else {
                context.report(path, "the command is empty", valid: notifyValid)
                return
            }
            guard first.text.hasPrefix("/") else {
                context.report(first.path, "\"\(first.text)\" is not an absolute path", valid: notifyValid)
                return
            }
            host.notify = argv.map(\.text)
        },
        SpecField("notify_events", valid: "an array of event kinds, e.g. [\"crashloop\", \"unhealthy\"]") { value, path, host, context in
            guard let kinds = context.strings(value, at: path, valid: "an array of event kinds") else { return }
            for k in kinds where k.text.isEmpty || !k.text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) {
                context.report(k.path, "\"\(k.text)\" is not an event kind", valid: "letters, digits and '-', e.g. \"crashloop\"")
                return
            }
            host.notifyEvents = Set(kinds.map(\.text))
        },
    ]
}

extension IPv4Network {
    /// The last address of the network.
    public var last: IPv4Address { IPv4Address(UInt32(UInt64(base.value) + size - 1)) }
}
