#if canImport(Glibc)
import Glibc
#endif

/// Runs `nft -f -` on a script: one process, one kernel transaction, all or nothing.
public struct NFT: Sendable {
    public var nft = "/usr/sbin/nft"
    /// Run nft in this net namespace (tests make their own host namespace); nil: ours.
    public var netnsPath: String?

    public init(netnsPath: String? = nil) { self.netnsPath = netnsPath }

    var prefix: [String] {
        // nsenter only enters the namespace and execs nft: no mount or sysfs games.
        netnsPath.map { ["/usr/bin/nsenter", "--net=\($0)"] } ?? []
    }

    public func apply(_ script: String) throws {
        let (status, output) = try run(["-f", "-"], stdin: script)
        guard status == 0 else {
            throw JailError(.system, "nft -f: \(output.isEmpty ? "exit status \(status)" : output)")
        }
    }

    /// stdout of `nft ARGS`; throws on a failing status.
    public func query(_ args: [String]) throws -> String {
        let (status, output) = try run(args, stdin: "")
        guard status == 0 else { throw JailError(.system, "nft \(args.joined(separator: " ")): \(output)") }
        return output
    }

    /// stdin comes from an unlinked temporary file, not a pipe: nft reads it whole, and a
    /// nft that dies early cannot leave us blocked on (or killed by) a full pipe.
    func run(_ args: [String], stdin script: String) throws -> (Int32, String) {
        let input = try FS.unlinkedFile(containing: script)
        defer { close(input) }
        return try HostCommand.run(prefix + [nft] + args, stdin: input, environment: nil, limit: 64 << 20)
    }
}

extension String {
    func trimmingSuffixNewlines() -> String {
        var s = self
        while s.last == "\n" { s.removeLast() }
        return s
    }
}
