/// A jail's network policy as recorded in `run/<jail>/firewall` when it is attached:
/// what the table holds for it until it stops, whatever happens to the spec files
/// meanwhile. Plain lines in the spec's own syntax, read back with the spec's parsers:
///
///     ports 8080:80/tcp 127.0.0.1:2222:22/tcp
///     egress allow 0.0.0.0/0:53 0.0.0.0/0:443/tcp
///     links db:5432/tcp
enum FirewallPolicy {
    static func render(_ n: NetworkSpec) -> String {
        let egress: String = switch n.egress {
        case .nat: "nat"
        case .none: "none"
        case .allow(let rules): (["allow"] + rules.map(\.description)).joined(separator: " ")
        }
        return "ports" + n.ports.map { " " + $0.description }.joined() + "\n"
            + "egress \(egress)\n"
            + "links" + n.links.map { " \($0.jail):\($0.port)/\($0.proto.rawValue)" }.joined() + "\n"
    }

    struct Unreadable: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ text: String) throws -> NetworkSpec {
        var n = NetworkSpec()
        n.mode = .private
        var sawEgress = false
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard let key = words.first else { continue }
            let values = Array(words.dropFirst())
            switch key {
            case "ports":
                n.ports = try values.map { v in
                    guard case .success(let p) = NetworkSchema.parsePort(v) else { throw Unreadable(description: "port \(v)") }
                    return p
                }
            case "links":
                n.links = try values.map { v in
                    guard case .success(let l) = NetworkSchema.parseLink(v) else { throw Unreadable(description: "link \(v)") }
                    return l
                }
            case "egress":
                sawEgress = true
                switch values.first {
                case "nat": n.egress = .nat
                case "none": n.egress = .none
                case "allow":
                    n.egress = .allow(try values.dropFirst().map { v in
                        guard case .success(let r) = NetworkSchema.parseEgress(v) else { throw Unreadable(description: "egress \(v)") }
                        return r
                    })
                default: throw Unreadable(description: "egress \(values.first ?? "")")
                }
            default: throw Unreadable(description: "line \(line)")
            }
        }
        guard sawEgress else { throw Unreadable(description: "no egress line") }
        return n
    }
}
