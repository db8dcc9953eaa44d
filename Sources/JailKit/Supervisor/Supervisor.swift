#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch
import Logging

/// The supervisor (`jailctl daemon`): restarts jails that end, with backoff and
/// crash-loop detection. It owns no jail: every jail lives under its own monitor process,
/// which records the exit status in `run/<jail>/exit`. The supervisor learns of exits
/// from inotify on those files (no polling; idle means blocked in poll(2)), and reads
/// everything else from the state database, so killing it (even SIGKILL) and starting it
/// again loses nothing: on start it reconciles what should run with what runs.
public final class Supervisor {
    let manager: JailManager
    let logger: Logger
    private var inotify: Int32 = -1
    private var watches: [Int32: String] = [:]  // watch descriptor → jail ("" for run/)
    private var timers: [String: Double] = [:]  // jail → monotonic time of its restart
    /// The failure count a pending restart records. Kept here, not written at decision
    /// time: a daemon that dies before the restart must not count the same exit twice.
    private var pendingFailures: [String: Int] = [:]
    private var listener: Int32 = -1
    private var periodic: [Periodic] = []
    public private(set) var running = false
    /// Alerts: events plus the `notify` command of jailctl.toml.
    public let notifier: Notifier
    let health: HealthMonitor
    let tables: TableWatcher
    /// Jails stopped for being unhealthy: their exit counts as a failure whatever its
    /// status, and SIGKILL follows when stop_timeout passes (jail → monotonic deadline).
    private var unhealthyStops: [String: (deadline: Double, pid: Int32, startTime: Int64)] = [:]

    /// Work the daemon does on a clock rather than on an event (backup freshness, health
    /// probes): the loop sleeps in poll(2) until the earliest is due.
    struct Periodic {
        let name: String
        let interval: Double
        var next: Double
        let body: () -> Void
    }

    public var socketPath: String { manager.root.path + "/supervisor.sock" }

    public init(manager: JailManager, logger: Logger) {
        self.manager = manager
        self.logger = logger
        notifier = Notifier(state: manager.state, command: manager.host.notify, kinds: manager.host.notifyEvents, logger: logger)
        health = HealthMonitor(manager: manager, notifier: notifier, logger: logger)
        tables = TableWatcher(manager: manager, logger: logger)
        health.onUnhealthy = { [unowned self] name, _ in self.stopUnhealthy(name) }
    }

    /// Runs `body` every `interval` seconds (the first time one interval after this call),
    /// on the supervisor's own thread, between events.
    public func every(_ interval: Double, _ name: String, _ body: @escaping () -> Void) {
        periodic.append(Periodic(name: name, interval: interval, next: monotonic() + interval, body: body))
    }

    deinit {
        if inotify >= 0 { close(inotify) }
        if listener >= 0 { close(listener) }
    }

    /// Sets up watches and the control socket, reconciles, and tells systemd it is ready.
    public func start() throws {
        inotify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if inotify < 0 { throw SystemError("inotify_init1") }
        let runDir = manager.root.runDir
        let wd = inotify_add_watch(inotify, runDir, UInt32(IN_CREATE | IN_MOVED_TO | IN_ONLYDIR))
        if wd < 0 { throw SystemError("inotify_add_watch \(runDir)") }
        watches[wd] = ""
        try listen()
        tables.start()
        reconcile()
        running = true
        notifySystemd("READY=1\nSTATUS=supervising \(watches.count - 1) jails")
        logger.info("supervisor ready: \(manager.root.path) (instance \(manager.root.instance))")
    }

    /// Runs until `stop` is set (tests) or forever (the daemon).
    public func run(until stop: () -> Bool = { false }) throws {
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        while !stop() {
            let probes = health.probeFds
            var fds = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: tables.fd, events: Int16(POLLIN), revents: 0)]
                + probes.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let timeout = nextTimeout()
            let rc = poll(&fds, nfds_t(fds.count), timeout)
            if rc < 0 {
                if errno == EINTR { continue }
                throw SystemError("poll")
            }
            if fds[0].revents != 0 { drainInotify(&buf) }
            if fds[1].revents != 0 { acceptOne() }
            if fds[2].revents != 0 { tables.readable() }
            for (i, p) in probes.enumerated() where fds[3 + i].revents != 0 { health.probeEnded(p.jail) }
            fireTimers()
        }
    }

    // MARK: reconcile

    /// Watches every jail's run directory and decides about jails that ended while no
    /// supervisor was looking.
    func reconcile() {
        let records: [JailRecord]
        do { records = try manager.state.jails() } catch {
            logger.error("reconcile: reading the state database: \(error)")
            return
        }
        // One read of the spec files for all of them.
        var specs: SpecSet?
        do { specs = try manager.loadSpecs(lenient: true) } catch {
            logger.error("reconcile: \(error); health checks wait for valid specs")
            specs = SpecSet()
        }
        for r in records where r.wanted {
            watch(jail: r.name, specs: specs)
            handleExit(r.name)
        }
        do {
            for name in try manager.ensureRelays() { logger.warning("jail \(name): its [::1] relay was gone; started again") }
        } catch {
            logger.error("reconcile: [::1] relays: \(error)")
        }
    }

    private func watch(jail: String, specs: SpecSet? = nil) {
        health.track(jail, specs: specs)
        guard !watches.values.contains(jail) else { return }
        let dir = manager.root.jailRun(jail)
        let wd = inotify_add_watch(inotify, dir, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF))
        if wd >= 0 {
            watches[wd] = jail
        } else if errno != ENOENT {
            logger.warning("watching \(dir): \(strerrorString(errno)); its exits are seen at the next reconcile")
        }
    }

    private func drainInotify(_ buf: inout [UInt8]) {
        while true {
            let n = buf.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            var off = 0
            let headerSize = MemoryLayout<inotify_event>.size
            while off + headerSize <= n {
                let (wd, mask, len) = buf.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    let e = raw.loadUnaligned(fromByteOffset: off, as: inotify_event.self)
                    return (e.wd, e.mask, Int(e.len))
                }
                let nameBytes = buf[(off + headerSize)..<min(n, off + headerSize + len)].prefix { $0 != 0 }
                let name = String(decoding: nameBytes, as: UTF8.self)
                off += headerSize + len
                guard let jail = watches[wd] else { continue }
                if mask & UInt32(IN_IGNORED) != 0 {
                    watches[wd] = nil
                } else if jail.isEmpty {
                    // A new run directory: a jail was started (by the CLI or by us).
                    watch(jail: name)
                    handleExit(name)
                } else if name == "exit" {
                    handleExit(jail)
                }
            }
        }
    }

    // MARK: decisions

    /// The jail may have ended: if so, and it is wanted up, decide whether and when to
    /// restart it.
    func handleExit(_ name: String) {
        do {
            // A health stop belongs to one run: gone (down, crash loop) or replaced, it
            // must not make a later run's clean exit count as a failure.
            if let stop = unhealthyStops[name] {
                let r = try manager.state.jail(name)
                if r == nil || r?.pid != stop.pid || r?.startTime != stop.startTime || r?.wanted == false { unhealthyStops[name] = nil }
            }
            guard let r = try manager.state.jail(name), r.wanted, !r.crashLoop, timers[name] == nil else { return }
            guard let status = try manager.currentStatus(of: name), status.state == .exited else { return }
            health.forget(name)
            // Stopped for failing its health checks: a failure, even if it exited cleanly.
            let unhealthy = unhealthyStops.removeValue(forKey: name).map { $0.pid == r.pid && $0.startTime == r.startTime } ?? false
            guard let r2 = try manager.state.jail(name),
                  let spec = try manager.definedSpec(name, in: manager.loadSpecs(lenient: true)) else { return }
            let now = wallClock()
            // Restarts since the sysadmin's last explicit start (`up`, `reset`) only: a
            // reset starts the count over.
            let events = try manager.state.events(jail: name, limit: 1000)
            let lastStart = events.last { $0.kind == "start" }?.time ?? 0
            let recent = events.filter { $0.kind == "restart" && $0.time >= lastStart && now - $0.time <= spec.supervision.restartWindow }
                .map(\.time)
            let ranFor = (r2.endedAt ?? now) - r2.startedAt
            let decision = RestartPolicy.decide(spec.supervision, exitStatus: unhealthy ? 1 << 8 : r2.exitStatus, ranFor: ranFor,
                                                failures: r2.failures, recentRestarts: recent, now: now,
                                                jitter: Double.random(in: 0.9...1.1))
            switch decision {
            case .stay:
                return
            case .restart(let delay, let failures):
                pendingFailures[name] = failures
                // Due at exit + delay: a daemon restarted meanwhile does not postpone it.
                let waited = max(0, now - (r2.endedAt ?? now))
                timers[name] = monotonic() + max(0, delay - waited)
                logger.info("jail \(name) ended (\(status.summary)); restarting in \(String(format: "%.2f", delay))s")
            case .crashLoop(let restarts):
                try manager.state.setSupervision(name, crashLoop: true)
                notifier.alert(kind: "crashloop", jail: name,
                               detail: "\(restarts) restarts within \(Int(spec.supervision.restartWindow))s; not restarting until `jailctl reset \(name)`")
                logger.error("jail \(name) is crash-looping: \(restarts) restarts within \(spec.supervision.restartWindow)s")
            }
        } catch {
            logger.error("jail \(name): deciding about its exit: \(error)")
        }
    }

    private func nextTimeout() -> Int32 {
        let due = Array(timers.values) + periodic.map(\.next) + unhealthyStops.values.map(\.deadline) + [health.nextDue, tables.nextDue].compactMap { $0 }
        guard let next = due.min() else { return -1 }
        return Int32(max(0, min(Double(Int32.max), (next - monotonic()) * 1000).rounded(.up)))
    }

    private func fireTimers() {
        notifier.reap()
        health.tick()
        tables.tick()
        for (name, stop) in unhealthyStops where stop.deadline <= monotonic() {
            // stop_timeout passed: the same run is still there, so it goes now.
            unhealthyStops[name]?.deadline = .infinity
            do { try manager.kill(pid: stop.pid, startTime: UInt64(stop.startTime), signal: SIGKILL) } catch {
                logger.error("jail \(name): SIGKILL after stop_timeout: \(error)")
            }
        }
        for i in periodic.indices where periodic[i].next <= monotonic() {
            periodic[i].body()
            // From now, not from when it was due: a slow run does not pile up runs.
            periodic[i].next = monotonic() + periodic[i].interval
        }
        let now = monotonic()
        for (name, at) in timers where at <= now {
            timers[name] = nil
            do {
                let r = try manager.up(name, restart: true, failures: pendingFailures[name])
                pendingFailures[name] = nil
                logger.info("jail \(name) restarted (pid \(r.status.pid ?? 0))")
                watch(jail: name)
                health.track(name)
            } catch {
                logger.error("jail \(name): restart failed: \(error)")
                try? manager.state.record(event: "restart-failed", jail: name, detail: "\(error)")
                // A failed launch is a failed run: decide again (backoff, crash loop).
                handleExitAfterFailedLaunch(name)
            }
        }
    }

    /// An unhealthy jail whose policy restarts failed runs is stopped (stop_signal, then
    /// SIGKILL after stop_timeout); its exit then goes through the restart policy as a
    /// failure. With restart = "no" it keeps running, marked unhealthy.
    func stopUnhealthy(_ name: String) {
        do {
            guard let spec = try manager.definedSpec(name, in: manager.loadSpecs(lenient: true)), spec.supervision.restart != .no,
                  let r = try manager.state.jail(name), manager.isAlive(r) else { return }
            unhealthyStops[name] = (monotonic() + spec.stopTimeout, r.pid, r.startTime)
            try manager.state.record(event: "health-stop", jail: name, detail: "stopping the unhealthy jail to restart it")
            try manager.kill(pid: r.pid, startTime: UInt64(r.startTime), signal: spec.stopSignal)
        } catch {
            logger.error("jail \(name): stopping it for being unhealthy: \(error)")
        }
    }

    private func handleExitAfterFailedLaunch(_ name: String) {
        do {
            // The record still describes the last run, which has ended; count the failed
            // launch as a restart so backoff and crash-loop limits apply to it too.
            try manager.state.record(event: "restart", jail: name, detail: "launch failed")
            if let f = pendingFailures.removeValue(forKey: name) { try manager.state.setSupervision(name, failures: f) }
        } catch {
            logger.error("jail \(name): recording a failed restart: \(error)")
        }
        handleExit(name)
    }

    // MARK: control socket

    /// A root-only Unix socket: `ping` answers with the supervisor's pid. Peers are
    /// checked with SO_PEERCRED: only uid 0 may talk to it.
    private func listen() throws {
        let path = socketPath
        unlink(path)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if listener < 0 { throw SystemError("socket") }
        var addr = try unixAddress(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc < 0 { throw SystemError("bind \(path)") }
        chmod(path, 0o600)
        if Glibc.listen(listener, 16) < 0 { throw SystemError("listen \(path)") }
    }

    private func acceptOne() {
        var uid: uid_t = 0
        let fd = jl_accept_peer(listener, &uid)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard uid == 0 else {
            logger.warning("control socket: refused a peer that is not root")
            return
        }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buf, buf.count)
        guard n > 0 else { return }
        let command = String(decoding: buf[0..<n], as: UTF8.self).trimmingSuffix("\n")
        let reply: String
        switch command.split(separator: " ").first.map(String.init) {
        case "ping": reply = "pong \(getpid())\n"
        case "reconcile":
            reconcile()
            reply = "ok\n"
        case "check":
            // Sent by `up` once the jail's record is saved: a jail that ended before the
            // record existed would otherwise never be looked at again.
            let name = command.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            if SpecName.parse(name).problem == nil {
                watch(jail: name)
                handleExit(name)
                reply = "ok\n"
            } else {
                reply = "error: bad jail name\n"
            }
        default: reply = "error: unknown command\n"
        }
        _ = Array(reply.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Asks a running supervisor over its socket; nil when none answers.
    public static func ask(_ root: StateRoot, _ command: String) -> String? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard var addr = try? unixAddress(root.path + "/supervisor.sock") else { return nil }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { return nil }
        let line = Array((command + "\n").utf8)
        guard line.withUnsafeBytes({ FS.writeAll(fd, $0.baseAddress, $0.count) }) else { return nil }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buf, buf.count)
        return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
    }

    /// `sd_notify` without libsystemd: one datagram to $NOTIFY_SOCKET.
    private func notifySystemd(_ message: String) {
        guard let env = getenv("NOTIFY_SOCKET") else { return }
        var path = String(cString: env)
        // An abstract socket is written with a leading '@' and has a NUL there.
        let abstract = path.hasPrefix("@")
        if abstract { path.removeFirst() }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, var addr = try? unixAddress((abstract ? "\0" : "") + path) else { return }
        defer { close(fd) }
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        if sent < 0 { logger.warning("sd_notify: \(strerrorString(errno))") }
    }
}

func unixAddress(_ path: String) throws -> sockaddr_un {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: addr.sun_path)
    guard bytes.count < capacity else { throw JailError(.system, "socket path too long: \(path)") }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    return addr
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var s = self
        while s.hasSuffix(suffix) { s.removeLast(suffix.count) }
        return s
    }
}
