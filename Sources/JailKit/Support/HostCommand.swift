#if canImport(Glibc)
import Glibc
#endif

/// Runs a host program of jailctl's own choosing (nft, ssh-keygen) and collects its
/// stdout and stderr together. Only jailctl's own argv, never a spec's.
enum HostCommand {
    /// The environment host programs get by default: nothing of the caller's.
    static let plainEnvironment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]

    /// - Parameters:
    ///   - stdin: a descriptor the program reads (nil: /dev/null)
    ///   - environment: nil passes the caller's own
    static func run(_ argv: [String], stdin: Int32? = nil, environment: [String]? = plainEnvironment,
                    limit: Int = 1 << 20) throws -> (status: Int32, output: String) {
        let (out, input) = try FS.pipeCloexec()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, input, 1)
        posix_spawn_file_actions_adddup2(&actions, input, 2)
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let env = environment.map { $0.map { strdup($0) } + [nil] }
        defer { for p in env ?? [] { free(p) } }
        var attr = cleanSpawnAttributes()
        defer { posix_spawnattr_destroy(&attr) }
        var pid: pid_t = 0
        let rc = env.map { posix_spawn(&pid, argv[0], &actions, &attr, cargs, $0) } ?? posix_spawn(&pid, argv[0], &actions, &attr, cargs, environ)
        close(input)
        if rc != 0 {
            close(out)
            throw SystemError("spawn \(argv[0])", errno: rc)
        }
        let output: [UInt8]
        do {
            output = try FS.readAll(out, path: "\(argv[0]) output", limit: limit)
        } catch {
            // Output abandoned (over `limit`, or unreadable): closed first, so a program
            // still writing gets EPIPE instead of blocking on a full pipe, and killed,
            // so one ignoring that cannot keep the caller in waitpid.
            close(out)
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            throw JailError(.system, "\(argv[0]): output not read (limit \(limit) bytes): \(error)")
        }
        close(out)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, String(decoding: output, as: UTF8.self).trimmingSuffixNewlines())
    }
}

/// posix_spawn attributes that give the program an empty signal mask and default
/// dispositions: the spawning thread's blocked signals (Swift's runtime threads, a test
/// runner's) would otherwise be blocked in it too, and `timeout` or SIGTERM could not
/// stop it. Destroy with posix_spawnattr_destroy.
public func cleanSpawnAttributes() -> posix_spawnattr_t {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    var none = sigset_t()
    sigemptyset(&none)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &none)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    return attr
}
