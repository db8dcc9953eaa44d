#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch
import Logging

/// Alerts: what a sysadmin must hear about (a crash loop, an unhealthy jail, a backup
/// gone stale). Each is an event in the state database, and, when `jailctl.toml` names
/// one and the kind is in `notify_events`, a run of the `[supervisor] notify` command
/// with the alert as one JSON object on stdin and in its environment:
///
///     {"kind":"crashloop","jail":"web","detail":"5 restarts within 60s","time":1700000000.5}
///     JAILCTL_EVENT=crashloop JAILCTL_JAIL=web JAILCTL_DETAIL="5 restarts within 60s"
///
/// The command runs detached from the caller's work (nobody waits for a mail to go out);
/// `reap()` collects finished ones. Saying an alert only once per episode is the caller's
/// business: only it knows when an episode ends.
public final class Notifier {
    let state: StateStore
    let command: [String]?
    let kinds: Set<String>
    let logger: Logger
    private var children: [pid_t] = []

    public init(state: StateStore, command: [String]?, kinds: Set<String> = HostSettings.defaultNotifyEvents, logger: Logger) {
        self.state = state
        self.command = command
        self.kinds = kinds
        self.logger = logger
    }

    public func alert(kind: String, jail: String, detail: String) {
        let time = wallClock()
        do {
            try state.record(event: kind, jail: jail, detail: detail, time: time)
        } catch {
            logger.error("alert \(kind) for \(jail): recording the event: \(error)")
        }
        logger.warning("alert \(kind) \(jail): \(detail)")
        guard let command, let path = command.first, kinds.contains(kind) else { return }
        let json = "{\"kind\":\(jsonString(kind)),\"jail\":\(jsonString(jail)),\"detail\":\(jsonString(detail)),\"time\":\(time)}\n"
        // stdin is an unlinked file holding the JSON: a command that never reads it
        // cannot block us on a full pipe.
        let input: Int32
        do { input = try FS.unlinkedFile(containing: json) } catch {
            logger.error("notify: \(error)")
            return
        }
        defer { close(input) }
        // Nothing of the daemon's environment: the command sees a plain PATH and the alert.
        let env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "JAILCTL_EVENT=\(kind)", "JAILCTL_JAIL=\(jail)", "JAILCTL_DETAIL=\(detail)"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        // Nothing of the daemon but stdout and stderr (its journal).
        _ = jl_spawn_actions_closefrom(&actions, 3)
        let cargs = command.map { strdup($0) } + [nil]
        let cenv = env.map { strdup($0) } + [nil]
        defer { for p in cargs + cenv { free(p) } }
        var attr = cleanSpawnAttributes()
        defer { posix_spawnattr_destroy(&attr) }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, cargs, cenv)
        if rc != 0 {
            logger.error("notify command \(path): \(strerrorString(rc))")
            return
        }
        children.append(pid)
    }

    func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// Collects notify commands that ended; says which failed.
    public func reap() {
        children = children.filter { pid in
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            guard rc == pid else { return rc == 0 }
            if status != 0 { logger.warning("notify command (pid \(pid)) ended with wait status \(status)") }
            return false
        }
    }

    /// Waits for every notify command still running (tests, and a daemon shutting down).
    public func wait() {
        for pid in children {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        children = []
    }
}
