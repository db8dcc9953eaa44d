import Glibc
import Testing

@testable import JailKit

/// The compiled default filter, loaded into a real process by Tests/seccomp/seccomp_check.c
/// exactly as the launcher loads it: what the kernel does with each call, not what the
/// profile says.
@Suite(.serialized) struct SeccompTests {
    static let source = Probe.tests + "/seccomp/seccomp_check.c"
    static let binary: String = {
        let out = Probe.tests + "/../.build/jailctl-seccomp-check"
        let rc = run(["/usr/bin/gcc", "-O2", "-Wall", "-pthread", "-o", out, source])
        precondition(rc == 0, "gcc of seccomp_check.c failed; is gcc installed?")
        return out
    }()

    /// Runs the checker with `filter` (nil: no filter) and returns its report and exit status.
    func check(_ filter: [UInt8]?, mode: String = "probe") throws -> (report: [String: String], status: Int32) {
        let dir = try TempDir("seccomp")
        defer { dir.remove() }
        var arg = "-"
        if let filter {
            arg = dir.path + "/filter.bpf"
            let fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            #expect(fd >= 0)
            #expect(FS.writeAll(fd, filter, filter.count))
            close(fd)
        }
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        // So that processes spawned by tests running alongside do not hold the pipe open.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let status = run([Self.binary, arg, mode], stdout: fds[1])
        close(fds[1])
        let text = readPipe(fds[0])
        close(fds[0])
        return (probeReport(text), status)
    }

    @Test func defaultFilterDeniesTheKernelAttackSurfaceAndRunsPrograms() throws {
        let (r, status) = try check(try SeccompCompiler.compile(.defaultProfile))
        #expect(status == 0)
        let eperm = "\(EPERM)", enosys = "\(ENOSYS)"
        for name in ["keyctl", "bpf", "perf_event_open", "io_uring_setup", "userfaultfd", "mount",
                     "personality_read_implies_exec", "clone_newns", "clone_newuser", "unshare_newuser", "ptrace_traceme",
                     "ioctl_tiocsti", "ioctl_tiocsti_high_bits"] {
            #expect(r[name] == eperm, "\(name): \(r[name] ?? "missing")")
        }
        // Other ioctls pass the filter (on fd -1 the kernel answers EBADF).
        #expect(r["ioctl_tiocgwinsz"] == "\(EBADF)")
        #expect(r["clone3"] == enosys)
        #expect(r["mseal"] == enosys, "a call newer than the reviewed table")
        for name in ["getpid", "open_dev_null", "fork", "clone_plain", "unshare_files", "personality_query", "pthread_create"] {
            #expect(r[name] == "0", "\(name): \(r[name] ?? "missing")")
        }
    }

    /// Without the filter the same calls do not fail with EPERM: the EPERMs above are the
    /// filter's, not the kernel's.
    @Test func baselineWithoutFilterDiffers() throws {
        let (r, status) = try check(nil)
        #expect(status == 0)
        for name in ["keyctl", "bpf", "perf_event_open", "personality_read_implies_exec", "clone3"] {
            #expect(r[name] != "\(EPERM)" && r[name] != nil, "\(name): \(r[name] ?? "missing")")
        }
    }

    @Test func allowEditReachesTheKernel() throws {
        let p = try #require(try SeccompProfile.forJail(allow: ["ptrace"], deny: ["getpid"]))
        let (r, _) = try check(try SeccompCompiler.compile(p))
        #expect(r["ptrace_traceme"] == "0")
        #expect(r["getpid"] == "\(EPERM)")
    }

    /// Foreign ABIs are not filtered by name but refused as a whole: the process dies of SIGSYS.
    @Test(arguments: ["x32", "i386"]) func foreignABIsKillTheProcess(mode: String) throws {
        let (r, status) = try check(try SeccompCompiler.compile(.defaultProfile), mode: mode)
        #expect(status == 128 + SIGSYS, "\(mode): status \(status), \(r)")
    }
}
