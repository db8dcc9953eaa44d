#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

/// Applies `nft -f` scripts: one kernel transaction each, all or nothing. In-process
/// through libnftables (the nft program's own library, so the same parser and the same
/// kernel state) when it loads, else by running the nft program: the program's start-up
/// (~2 ms) was most of an element update, and a deletion's 10-13 ms wait for the
/// kernel's cleanup comes when its socket closes, which the kept context puts off (see
/// jl_nft.h).
public struct NFT: Sendable {
    public var nft = "/usr/sbin/nft"
    /// Run nft in this net namespace (tests make their own host namespace); nil: ours.
    public var netnsPath: String?
    /// false: always the nft program (tests of the fallback).
    public var inProcess = true

    public init(netnsPath: String? = nil, inProcess: Bool = true) {
        self.netnsPath = netnsPath
        self.inProcess = inProcess
    }

    var prefix: [String] {
        // nsenter only enters the namespace and execs nft: no mount or sysfs games.
        netnsPath.map { ["/usr/bin/nsenter", "--net=\($0)"] } ?? []
    }

    public func apply(_ script: String) throws {
        if inProcess, try applyInProcess(script) { return }
        let (status, output) = try run(["-f", "-"], stdin: script)
        guard status == 0 else {
            throw JailError(.system, "nft -f: \(output.isEmpty ? "exit status \(status)" : output)")
        }
    }

    /// true: applied; false: libnftables cannot be used here, run the program. A script
    /// nft refuses throws, as from the program.
    func applyInProcess(_ script: String) throws -> Bool {
        var nsfd: Int32 = -1
        if let netnsPath {
            nsfd = open(netnsPath, O_RDONLY | O_CLOEXEC)
            if nsfd < 0 { throw SystemError("open \(netnsPath)") }
        }
        defer { if nsfd >= 0 { close(nsfd) } }
        var err = [CChar](repeating: 0, count: 4096)
        let rc = jl_nft_apply(nsfd, script, &err, err.count)
        if rc == 0 { return true }
        if rc == -1 {
            let message = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw JailError(.system, "nft -f: \(message.trimmingSuffixNewlines())")
        }
        return false
    }

    /// Closes the kept libnftables context of this namespace (a test's namespace must
    /// not be held alive by it). Costs the kernel's cleanup wait.
    public func release() {
        guard let netnsPath else { return jl_nft_release(-1) }
        let nsfd = open(netnsPath, O_RDONLY | O_CLOEXEC)
        guard nsfd >= 0 else { return }
        defer { close(nsfd) }
        jl_nft_release(nsfd)
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
