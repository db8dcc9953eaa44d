#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch
import Logging

/// A jail's health as the supervisor last saw it; `run/<jail>/health` holds it for
/// `status` ("healthy 1700000000.5 fcgi ok").
public enum HealthState: String, Sendable, Codable {
    /// No verdict yet (or only failures within start_period).
    case starting, healthy, unhealthy
}

/// The `[health]` checks of running jails, driven by the supervisor's poll loop. Each
/// check runs in a process of its own (a forked probe for tcp/http/fcgi, the jail's own
/// namespaces and limits for exec), so a slow or hostile service never blocks the loop;
/// its pidfd is in the poll set and its deadline is one of the loop's timers.
final class HealthMonitor {
    struct Probe {
        let pid: pid_t
        let pidfd: Int32
        let report: Int32
        let deadline: Double
    }

    struct Tracked {
        var spec: HealthSpec
        /// The run the verdicts are about; a new pid or start time starts over.
        var pid: Int32
        var startTime: Int64
        var since: Double
        var failures = 0
        var state = HealthState.starting
        var next: Double
        var probe: Probe?
    }

    let manager: JailManager
    let notifier: Notifier
    let logger: Logger
    /// Called once when a jail turns unhealthy.
    var onUnhealthy: (String, HealthSpec) -> Void = { _, _ in }
    private(set) var jails: [String: Tracked] = [:]

    init(manager: JailManager, notifier: Notifier, logger: Logger) {
        self.manager = manager
        self.notifier = notifier
        self.logger = logger
    }

    /// Looks at a jail again (started, restarted, reconciled): tracks it while it runs
    /// with a `[health]` table; a new run starts with a clean slate. `specs`: already
    /// loaded ones (a reconcile of many jails reads the spec files once).
    func track(_ name: String, specs: SpecSet? = nil) {
        do {
            guard let r = try manager.state.jail(name), r.wanted, manager.isAlive(r),
                  let health = try manager.definedSpec(name, in: specs ?? manager.loadSpecs(lenient: true))?.supervision.health
            else {
                forget(name)
                return
            }
            if let t = jails[name], t.pid == r.pid, t.startTime == r.startTime, t.spec == health { return }
            forget(name)
            let now = monotonic()
            // The first check waits one interval (or the start period, if shorter): a
            // service is rarely listening the instant it starts.
            jails[name] = Tracked(spec: health, pid: r.pid, startTime: r.startTime, since: now,
                                  next: now + min(health.interval, max(health.startPeriod, 0.5)))
            write(name, .starting, "")
        } catch {
            logger.error("jail \(name): health: \(error)")
        }
    }

    func forget(_ name: String) {
        guard let t = jails.removeValue(forKey: name) else { return }
        if let p = t.probe { end(p, kill: true) }
    }

    /// The earliest moment something is due (a check to start or a probe's deadline).
    var nextDue: Double? {
        jails.values.map { $0.probe?.deadline ?? $0.next }.min()
    }

    /// The pidfds of running probes, for poll(2).
    var probeFds: [(fd: Int32, jail: String)] {
        jails.compactMap { name, t in t.probe.map { ($0.pidfd, name) } }
    }

    /// Starts due checks and fails those past their timeout.
    func tick() {
        let now = monotonic()
        for name in jails.keys.sorted() {
            guard let t = jails[name] else { continue }
            if let p = t.probe {
                if now >= p.deadline {
                    end(p, kill: true)
                    jails[name]?.probe = nil
                    verdict(name, healthy: false, reason: "timed out after \(t.spec.timeout)s")
                }
            } else if now >= t.next {
                start(name)
            }
        }
    }

    /// A probe's pidfd became readable: it ended.
    func probeEnded(_ name: String) {
        guard let p = jails[name]?.probe else { return }
        let (status, reason) = end(p, kill: false)
        jails[name]?.probe = nil
        let healthy = status == 0
        verdict(name, healthy: healthy, reason: reason.isEmpty ? (healthy ? "ok" : "exit status \(status)") : reason)
    }

    // MARK: one check

    private func start(_ name: String) {
        guard let t = jails[name] else { return }
        jails[name]?.next = monotonic() + t.spec.interval
        // Still the run we track? A restart is seen here too, when no event said so.
        guard let r = try? manager.state.jail(name), r.pid == t.pid, r.startTime == t.startTime, manager.isAlive(r) else {
            track(name)
            return
        }
        // An unlinked file, not a pipe: a check that writes a lot (an exec check's
        // output) never blocks on a full pipe nobody reads until it ends.
        let report: Int32
        do { report = try FS.unlinkedFile(containing: "") } catch {
            logger.error("jail \(name): health: \(error)")
            return
        }
        let pid: pid_t
        do {
            pid = try launch(name, t.spec, jailPid: r.pid, report: report)
        } catch {
            close(report)
            verdict(name, healthy: false, reason: "\(error)")
            return
        }
        let pidfd = jl_pidfd_open(pid)
        guard pidfd >= 0 else {
            // Without a pidfd the loop would never hear of its end: end it now.
            var st: Int32 = 0
            _ = Glibc.kill(pid, SIGKILL)
            while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
            close(report)
            verdict(name, healthy: false, reason: "pidfd_open: \(strerrorString(-pidfd))")
            return
        }
        jails[name]?.probe = Probe(pid: pid, pidfd: pidfd, report: report, deadline: monotonic() + t.spec.timeout)
    }

    /// Starts the check's process; its report (or output) goes to `report`.
    private func launch(_ name: String, _ spec: HealthSpec, jailPid: Int32, report: Int32) throws -> pid_t {
        let timeoutMs = Int32(min(spec.timeout * 1000, Double(Int32.max)))
        switch spec.check {
        case .exec(let argv):
            // The report is a file of the host's /tmp: a check may not fill it.
            return try manager.startExec(name, argv: argv, output: report, outputLimit: 64 << 10)
        case .tcp(let port):
            return try probe(JL_PROBE_TCP, name, jailPid: jailPid, endpoint: .port(port), path: "", timeoutMs, report)
        case .http(let path):
            return try probe(JL_PROBE_HTTP, name, jailPid: jailPid, endpoint: spec.endpoint ?? .port(80), path: path, timeoutMs, report)
        case .fcgi(let path):
            return try probe(JL_PROBE_FCGI, name, jailPid: jailPid, endpoint: spec.endpoint ?? .port(9000), path: path, timeoutMs, report)
        }
    }

    /// A private jail is reached at its own address from the host, the way its clients
    /// reach it; any other at 127.0.0.1 inside its net namespace. A socket is reached
    /// through /proc/PID/root, the jail's own view of its files.
    private func probe(_ kind: jl_probe_kind, _ name: String, jailPid: Int32, endpoint: HealthSpec.Endpoint,
                       path: String, _ timeoutMs: Int32, _ report: Int32) throws -> pid_t {
        var netnsFd: Int32 = -1
        defer { if netnsFd >= 0 { close(netnsFd) } }
        let pid: pid_t
        switch endpoint {
        case .socket(let inside):
            // The path resolves in the jail's own tree (the probe chroots there): through
            // /proc/PID/root from the host, a symlink the jail planted would resolve
            // against the host's root instead.
            let rootFd = open("/proc/\(jailPid)/root", oPath | O_DIRECTORY | O_CLOEXEC)
            if rootFd < 0 { throw SystemError("open /proc/\(jailPid)/root") }
            defer { close(rootFd) }
            // Still the jail's process, not a reused pid, now that the fd pins it.
            guard let t = jails[name], jl_proc_start_time(jailPid) == UInt64(t.startTime) else {
                throw JailError(.notFound, "jail \(name) ended before its check")
            }
            var addr = try unixAddress(inside)
            pid = withUnsafePointer(to: &addr) {
                jl_probe_start(Int32(kind.rawValue), -1, rootFd, $0, UInt32(MemoryLayout<sockaddr_un>.size), path, timeoutMs, report)
            }
        case .port(let port):
            var host = "127.0.0.1"
            if let attached = manager.attachedJail(name) {
                host = "\(attached.address)"
            } else {
                netnsFd = open("/proc/\(jailPid)/ns/net", O_RDONLY | O_CLOEXEC)
                if netnsFd < 0 { throw SystemError("open /proc/\(jailPid)/ns/net") }
            }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { throw JailError(.system, "bad address \(host)") }
            pid = withUnsafePointer(to: &addr) {
                jl_probe_start(Int32(kind.rawValue), netnsFd, -1, $0, UInt32(MemoryLayout<sockaddr_in>.size), path, timeoutMs, report)
            }
        }
        if pid < 0 { throw SystemError("fork a health probe", errno: -pid) }
        return pid
    }

    /// Reaps a probe (killing it first when asked) and returns its exit status and the
    /// first line it reported.
    @discardableResult
    private func end(_ p: Probe, kill: Bool) -> (Int32, String) {
        if kill { _ = jl_pidfd_send_signal(p.pidfd, SIGKILL) }
        var status: Int32 = 0
        while waitpid(p.pid, &status, 0) < 0 && errno == EINTR {}
        var buf = [UInt8](repeating: 0, count: 512)
        // From the start: the check's writes moved the shared offset to the end.
        let n = pread(p.report, &buf, buf.count, 0)
        close(p.report)
        close(p.pidfd)
        let text = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
        let line = text.split(separator: "\n").first.map(String.init) ?? ""
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, String(line.prefix(200)))
    }

    // MARK: verdicts

    private func verdict(_ name: String, healthy: Bool, reason: String) {
        guard var t = jails[name] else { return }
        if healthy {
            if t.state == .unhealthy {
                do { try manager.state.record(event: "healthy", jail: name, detail: reason) } catch {
                    logger.error("jail \(name): recording its recovery: \(error)")
                }
            }
            if t.state != .healthy { write(name, .healthy, reason) }
            t.failures = 0
            t.state = .healthy
            jails[name] = t
            return
        }
        // Failures while the service starts up do not count.
        if t.state == .starting && monotonic() - t.since < t.spec.startPeriod { return }
        t.failures += 1
        logger.info("jail \(name): health check failed (\(t.failures)/\(t.spec.retries)): \(reason)")
        let turnsUnhealthy = t.failures >= t.spec.retries && t.state != .unhealthy
        if turnsUnhealthy { t.state = .unhealthy }
        jails[name] = t
        guard turnsUnhealthy else { return }
        // The event first: whoever sees "unhealthy" in status finds its alert too.
        notifier.alert(kind: "unhealthy", jail: name, detail: "\(t.failures) failed checks in a row; last: \(reason)")
        write(name, .unhealthy, reason)
        onUnhealthy(name, t.spec)
    }

    private func write(_ name: String, _ state: HealthState, _ reason: String) {
        let line = "\(state.rawValue) \(wallClock()) \(reason.replacingOccurrences(of: "\n", with: " "))\n"
        do { try FS.writeAtomically(manager.root.jailRun(name) + "/health", line, mode: 0o644) } catch {
            logger.error("jail \(name): writing its health: \(error)")
        }
    }
}
