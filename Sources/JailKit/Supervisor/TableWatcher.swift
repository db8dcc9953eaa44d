#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch
import Logging

/// Puts the instance's nftables table back when another tool removes it (`nft flush
/// ruleset` by a firewall script, a distribution's firewall reloading). Event-driven:
/// `nft monitor tables` reports every table change on a pipe in the supervisor's poll
/// set; a change that names our table (or any flush) is checked a moment later, and if
/// the table is gone while jails are attached, the ruleset is applied again from the
/// state, with a "network-reapply" event.
final class TableWatcher {
    let manager: JailManager
    let logger: Logger
    private(set) var fd: Int32 = -1
    private var pid: pid_t = 0
    private var buffer: [UInt8] = []
    /// When to look at the table (monotonic); nil: nothing pending.
    private(set) var checkAt: Double?
    /// When to start the monitor again after it ended.
    private var restartAt: Double?

    init(manager: JailManager, logger: Logger) {
        self.manager = manager
        self.logger = logger
    }

    deinit { stop() }

    var table: String { manager.network.ruleset.table }

    var nextDue: Double? { [checkAt, restartAt].compactMap { $0 }.min() }

    func start() {
        let fds: (read: Int32, write: Int32)
        do { fds = try FS.pipeCloexec() } catch {
            logger.error("nft monitor: \(error); a flushed table waits for `jailctl network reapply`")
            return
        }
        _ = fcntl(fds.read, F_SETFL, O_NONBLOCK)
        let argv = [manager.network.nft.nft, "monitor", "tables"]
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        // Tied to us: a daemon killed with SIGKILL takes its monitor along.
        let spawned = jl_spawn_tied(argv[0], cargs, environ, fds.write)
        close(fds.write)
        guard spawned > 0 else {
            close(fds.read)
            logger.error("nft monitor: \(strerrorString(-spawned)); a flushed table waits for `jailctl network reapply`")
            restartAt = monotonic() + 30
            return
        }
        pid = spawned
        fd = fds.read
        // Whatever happened while no monitor ran (a daemon restart) is looked at once.
        checkAt = monotonic()
    }

    func stop() {
        if pid > 0 {
            kill(pid, SIGTERM)
            var st: Int32 = 0
            while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
            pid = 0
        }
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// The pipe is readable: collect lines; EOF means nft ended and is started again.
    func readable() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n > 0 {
                buffer += chunk[0..<n]
                continue
            }
            if n == 0 {
                logger.warning("nft monitor ended; starting it again in 1s")
                stop()
                restartAt = monotonic() + 1
            }
            break
        }
        while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: buffer[..<nl], as: UTF8.self)
            buffer.removeSubrange(...nl)
            if Self.concerns(line, table: table) && checkAt == nil {
                // Our own apply deletes and adds the table in one transaction: look a
                // little later, at what stands then.
                checkAt = monotonic() + 0.1
            }
        }
    }

    /// A monitor line that may mean our table is gone.
    static func concerns(_ line: String, table: String) -> Bool {
        line.hasPrefix("flush ruleset") || (line.hasPrefix("delete table") && line.split(separator: " ").contains { $0 == table })
    }

    func tick() {
        let now = monotonic()
        if let at = restartAt, at <= now {
            restartAt = nil
            start()
        }
        guard let at = checkAt, at <= now else { return }
        checkAt = nil
        do {
            let attached = try manager.attachedJails()
            guard !attached.isEmpty else { return }
            if (try? manager.network.nft.query(["list", "table", "inet", table])) != nil { return }
            try manager.applyFirewall()
            try manager.state.record(event: "network-reapply", jail: "-",
                                     detail: "table inet \(table) was removed by another tool; applied again for \(attached.count) jail(s)")
            logger.warning("table inet \(table) was removed by another tool; applied it again")
        } catch {
            logger.error("reapplying table inet \(table): \(error)")
        }
    }
}
