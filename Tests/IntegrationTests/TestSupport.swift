import CJailLaunch
import Glibc
import Testing

@testable import JailKit

/// Integration tests need root and the real kernel. Without root they fail, loudly: a
/// CI that silently skipped them would prove nothing.
func requireRoot() throws {
    if geteuid() != 0 {
        Issue.record("integration tests need root (run scripts/test as root)")
        throw JailError(.system, "not root")
    }
}

/// A temporary directory that tests remove when done. Under /var/tmp, not /tmp: an
/// image copies `files` to the same path, and a jail's /tmp is a tmpfs of its own.
struct TempDir {
    let path: String
    init(_ tag: String = "t") throws {
        var template = Array("/var/tmp/jailctl-test-\(tag)-XXXXXX".utf8CString)
        let made: String? = template.withUnsafeMutableBufferPointer { buf in
            guard let base = buf.baseAddress, let p = mkdtemp(base) else { return nil }
            return String(cString: p)
        }
        guard let made else { throw SystemError("mkdtemp") }
        path = made
        chmod(path, 0o755)
    }
    func remove() { try? FS.removeTree(path) }
}

/// The static probe (Tests/probe/probe.c), built once per test run with gcc -static.
enum Probe {
    static let tests = String(#filePath).split(separator: "/").dropLast(2).map(String.init).reduce("") { $0 + "/" + $1 }
    static let source = tests + "/probe/probe.c"

    static let binary: String = {
        // Inside .build (ignored by git), not /tmp: nothing of a test run stays outside.
        let out = tests + "/../.build/jailctl-probe"
        let rc = run(["/usr/bin/gcc", "-static", "-O2", "-o", out, source])
        precondition(rc == 0, "gcc -static of the probe failed; is gcc installed?")
        return out
    }()
}

/// Runs a host command and returns its exit status (tests only).
@discardableResult
func run(_ argv: [String], stdout: Int32 = -1) -> Int32 {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if stdout >= 0 { posix_spawn_file_actions_adddup2(&actions, stdout, 1) }
    let cargs = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var attr = cleanSpawnAttributes()
    defer { posix_spawnattr_destroy(&attr) }
    guard posix_spawn(&pid, argv[0], &actions, &attr, cargs, environ) == 0 else { return -1 }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// Reads a pipe to its end.
func readPipe(_ fd: Int32) -> String {
    (try? FS.readAll(fd, path: "pipe")).map { String(decoding: $0, as: UTF8.self) } ?? ""
}

/// Parses the probe's "key=value" lines.
func probeReport(_ text: String) -> [String: String] {
    var out: [String: String] = [:]
    for line in text.split(separator: "\n") {
        guard let eq = line.firstIndex(of: "=") else { continue }
        out[String(line[..<eq])] = String(line[line.index(after: eq)...])
    }
    return out
}

/// Spawns argv with the given environment, stdout and stderr on `output` (or a file
/// opened for appending); returns the pid. Signals as a shell would leave them.
func spawn(_ argv: [String], env: [String], output: Int32? = nil, appendTo file: String? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let output {
        posix_spawn_file_actions_adddup2(&actions, output, 1)
    } else if let file {
        posix_spawn_file_actions_addopen(&actions, 1, file, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    }
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // Tests run in parallel: pipes another test holds open must not leak into a
    // long-lived child (its reader would wait for that child's end).
    _ = jl_spawn_actions_closefrom(&actions, 3)
    let cargs = argv.map { strdup($0) } + [nil]
    let cenv = env.map { strdup($0) } + [nil]
    defer { for p in cargs + cenv { free(p) } }
    var attr = cleanSpawnAttributes()
    defer { posix_spawnattr_destroy(&attr) }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargs, cenv)
    guard rc == 0 else { throw SystemError("posix_spawn \(argv[0])", errno: rc) }
    return pid
}

/// Runs the jailctl executable with this state root and spec directory; returns (exit
/// code, stdout and stderr together).
func runJailctl(root: String, specs: String, _ args: [String]) -> (Int32, String) {
    var fds: [Int32] = [0, 0]
    pipe(&fds)
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    let env = ["JAILCTL_ROOT=\(root)", "JAILCTL_SPECS=\(specs)", "PATH=/usr/bin:/bin"]
    let pid: pid_t
    do {
        pid = try spawn([CLITests.binary] + args, env: env, output: fds[1])
    } catch {
        close(fds[0])
        close(fds[1])
        return (-1, "\(error)")
    }
    close(fds[1])
    let out = readPipe(fds[0])
    close(fds[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return ((status >> 8) & 0xff, out)
}

/// After every jail of a fixture went down, a cgroup still there is a bug: name it (the
/// test fails) and remove it, so one failure does not leak into the leak check.
func recordLeftoverCgroups(_ manager: JailManager) {
    guard let probe = try? manager.cgroup(of: "probe") else { return }
    for instanceDir in probe.instanceDirectories where FS.isDirectory(instanceDir) {
        for jail in ((try? FS.list(instanceDir)) ?? []) where FS.isDirectory(instanceDir + "/" + jail) {
            Issue.record("cgroup of jail \(jail) left behind in \(instanceDir)")
            if let cg = try? manager.cgroup(of: jail) {
                do {
                    try cg.kill()
                    try cg.remove()
                } catch {
                    Issue.record("removing the cgroup of \(jail): \(error)")
                }
            }
        }
    }
}

/// A TCP connection to address:port with a receive timeout; nil when refused or
/// unreachable. The caller closes it.
func tcpConnect(_ address: String, _ port: UInt16, timeout: Int = 2) -> Int32? {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard s >= 0 else { return nil }
    var tv = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = port.bigEndian
    inet_pton(AF_INET, address, &a.sin_addr)
    let rc = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        close(s)
        return nil
    }
    return s
}
