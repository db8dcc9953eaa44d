#if canImport(Glibc)
import Glibc
#endif

extension Supervisor {
    /// The backup jails' periodic work (push summaries, snapshots, retention, quota and
    /// freshness alerts), every `interval` seconds, as `jailctl backup check` child
    /// processes: a snapshot of a large tree takes a while, and the supervisor's own loop
    /// must stay free for restarts. One child per backup jail at a time; finished ones
    /// are reaped at the next tick. JAILCTL_BACKUP_INTERVAL overrides the interval.
    public func superviseBackups(executable: String, interval: Double = 60) {
        let seconds = getenv("JAILCTL_BACKUP_INTERVAL").flatMap { Double(String(cString: $0)) } ?? interval
        let children = BackupChildren()
        every(seconds, "backup") { [manager, logger] in
            children.reap(logger: { logger.warning("\($0)") })
            let jails: [String]
            do {
                jails = try manager.loadSpecs(lenient: true).jails.values.filter { $0.backup != nil }.map(\.name).sorted()
            } catch {
                logger.error("backup checks: the specs do not load, skipped until they do: \(error)")
                return
            }
            for jail in jails where children.running[jail] == nil {
                let argv = [executable, "backup", "check", "--jail", jail, "--root", manager.root.path,
                            "--specs", manager.specsDirectory]
                let cargs = argv.map { strdup($0) } + [nil]
                defer { for p in cargs { free(p) } }
                var pid: pid_t = 0
                var attr = cleanSpawnAttributes()
                defer { posix_spawnattr_destroy(&attr) }
                let rc = posix_spawn(&pid, executable, nil, &attr, cargs, environ)
                if rc != 0 {
                    logger.error("backup check of \(jail): spawn \(executable): \(strerrorString(rc))")
                } else {
                    children.running[jail] = pid
                }
            }
        }
    }
}

/// The supervisor's running `backup check` children, by jail.
final class BackupChildren {
    var running: [String: pid_t] = [:]

    func reap(logger: (String) -> Void) {
        for (jail, pid) in running {
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == 0 { continue }
            if rc == pid && status != 0 { logger("backup check of \(jail) ended with wait status \(status)") }
            running[jail] = nil
        }
    }
}
