#if canImport(Glibc)
import Glibc
#endif

/// Runs a host program (ssh-keygen) for the backup area's trusted side:
/// stdin from /dev/null, stdout and stderr captured together. Only jailctl's own argv.
enum HostCommand {
    static func run(_ argv: [String], limit: Int = 1 << 20) throws -> (status: Int32, output: String) {
        var fds: [Int32] = [0, 0]
        if pipe(&fds) < 0 { throw SystemError("pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let envText: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]
        let env = envText.map { strdup($0) } + [nil]
        defer { for p in env { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cargs, env)
        close(fds[1])
        defer { close(fds[0]) }
        if rc != 0 { throw SystemError("spawn \(argv[0])", errno: rc) }
        let out = (try? FS.readAll(fds[0], path: "\(argv[0]) output", limit: limit)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, out.trimmingSuffixNewlines())
    }
}
