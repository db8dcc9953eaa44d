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
        var template = Array("/tmp/jailctl-nft-XXXXXX".utf8CString)
        let input = template.withUnsafeMutableBufferPointer { p in p.baseAddress.map { mkstemp($0) } ?? -1 }
        if input < 0 { throw SystemError("mkstemp for nft") }
        template.withUnsafeBufferPointer { p in if let b = p.baseAddress { unlink(b) } }
        defer { close(input) }
        // Only the spawned nft should inherit it, through the dup2 below.
        _ = fcntl(input, F_SETFD, FD_CLOEXEC)
        var bytes = Array(script.utf8)
        guard bytes.withUnsafeMutableBytes({ FS.writeAll(input, $0.baseAddress, $0.count) }) else { throw SystemError("write nft script") }
        lseek(input, 0, SEEK_SET)

        var fds: [Int32] = [0, 0]
        if pipe(&fds) < 0 { throw SystemError("pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        let argv = prefix + [nft] + args
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cargs, environ)
        close(fds[1])
        defer { close(fds[0]) }
        if rc != 0 { throw SystemError("spawn \(argv[0])", errno: rc) }
        let out = (try? FS.readAll(fds[0], path: "nft output")).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, out.trimmingSuffixNewlines())
    }
}

extension String {
    func trimmingSuffixNewlines() -> String {
        var s = self
        while s.last == "\n" { s.removeLast() }
        return s
    }
}
