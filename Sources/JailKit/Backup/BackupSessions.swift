#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

extension BackupManager {
    /// Ends the running transfers of a host: its gate processes (their command line is
    /// `gate -c "host NAME"`, their uid the jail's backup uid) and their rsync children.
    /// `remove-host` calls it, so a revoked key keeps no session open. Each process is
    /// pinned with a pidfd and checked again before the signal (no reused pid is hit).
    /// Returns how many processes were signalled.
    @discardableResult
    public func endSessions(of host: String) throws -> Int {
        let backup = try ids().backup
        let pids = ((try? FS.list("/proc")) ?? []).compactMap { Int32($0) }
        let gates = pids.filter { isGate($0, host: host, uid: backup) }
        let children = pids.filter { pid in gates.contains(parent(of: pid) ?? -1) && uid(of: pid) == backup }
        var signalled = 0
        for pid in gates + children {
            let start = jl_proc_start_time(pid)
            let fd = jl_pidfd_open(pid)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            guard jl_proc_start_time(pid) == start, uid(of: pid) == backup else { continue }
            if jl_pidfd_send_signal(fd, SIGKILL) == 0 { signalled += 1 }
        }
        return signalled
    }

    func isGate(_ pid: Int32, host: String, uid expected: UInt32) -> Bool {
        guard uid(of: pid) == expected, let raw = try? FS.readFile("/proc/\(pid)/cmdline", limit: 4096) else { return false }
        let argv = raw.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        return argv.count >= 3 && argv[1] == "-c" && argv[2] == "host \(host)"
    }

    func uid(of pid: Int32) -> UInt32? {
        guard let text = try? FS.readText("/proc/\(pid)/status") else { return nil }
        let line = text.split(separator: "\n").first { $0.hasPrefix("Uid:") }
        return line?.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { UInt32($0) }
    }

    func parent(of pid: Int32) -> Int32? {
        guard let text = try? FS.readText("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm) ": state, then ppid.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }
}
