#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// The trusted side of a backup jail, run by root outside the jail: the area's layout and
/// the files sshd reads, the hosts and their keys, and the periodic work (push summaries,
/// snapshots, retention, quota, freshness).
///
/// The area on the host (`[backup] directory`), and who may write what:
///
///     etc/        jail root, read-only in the jail: sshd_config, host key, authorized_keys,
///                 passwd, group, the gate
///     empty/      jail root, read-only: sshd's privilege separation directory
///     hosts/NAME/ jail root: QUOTA-EXCEEDED (a flag the gate reads)
///       current/  the backup user: what the host pushed
///       log/      the backup user: the gate's completion records (untrusted hints)
///     snapshots/NAME/STAMP/   read-only in the jail; made here, outside it
///     keys/       host root only, never mounted: the registered hosts
///     state/      host root only, never mounted: per-host bookkeeping
public final class BackupManager {
    public let jail: String
    public let spec: BackupSpec
    public let manager: JailManager
    let logger: Logger
    /// Alerts (stale host, over quota) go through it: an event and jailctl.toml's notify
    /// command. Without one, an alert is only an event.
    public var notifier: Notifier?

    public init(jail: String, spec: BackupSpec, manager: JailManager, logger: Logger = Logger(label: "jailctl.backup")) {
        self.jail = jail
        self.spec = spec
        self.manager = manager
        self.logger = logger
    }

    /// The backup jail of a spec set: by name, or the only one.
    public static func forJail(_ name: String?, manager: JailManager) throws -> BackupManager {
        let set = try manager.loadSpecs()
        let backups = set.jails.values.filter { $0.backup != nil }.sorted { $0.name < $1.name }
        let chosen: JailSpec
        if let name {
            guard let j = set.jails[name], j.backup != nil else {
                throw JailError(.notFound, "no backup jail named \(name) (backup jails: \(backups.map(\.name).joined(separator: ", ")))")
            }
            chosen = j
        } else {
            guard backups.count == 1, let only = backups.first else {
                throw JailError(.notFound, backups.isEmpty ? "no jail with a [backup] table in \(manager.specsDirectory)/Jails"
                                : "several backup jails (\(backups.map(\.name).joined(separator: ", "))): name one with --jail")
            }
            chosen = only
        }
        guard let b = chosen.backup else { throw JailError(.notFound, "jail \(chosen.name) has no [backup] table") }
        return BackupManager(jail: chosen.name, spec: b, manager: manager)
    }

    var dir: String { spec.directory }
    var etc: String { dir + "/etc" }
    var keysDir: String { dir + "/keys" }
    var stateDir: String { dir + "/state" }
    public func current(_ host: String) -> String { dir + "/hosts/\(host)/current" }
    public func snapshots(_ host: String) -> String { dir + "/snapshots/\(host)" }

    /// Host ids of the jail's root and backup user (the jail's leased uid range).
    func ids() throws -> (root: UInt32, backup: UInt32) {
        let base = try manager.state.idRange(for: jail).base
        return (base, base + BackupFiles.backupUID)
    }

    // MARK: layout

    /// Creates or repairs the area and writes sshd's files; the host key is made once
    /// and kept. Idempotent: `up` runs it every time.
    public func prepare() throws {
        let (jroot, backup) = try ids()
        try dirAt(dir, owner: 0, mode: 0o755)
        try dirAt(etc, owner: jroot, mode: 0o755)
        try dirAt(dir + "/empty", owner: jroot, mode: 0o755)
        try dirAt(dir + "/hosts", owner: jroot, mode: 0o755)
        try dirAt(dir + "/snapshots", owner: 0, mode: 0o755)
        try dirAt(keysDir, owner: 0, mode: 0o700)
        try dirAt(stateDir, owner: 0, mode: 0o700)
        try followIdRange(to: jroot)
        try fileAt(etc + "/sshd_config", BackupFiles.sshdConfig(), owner: jroot, mode: 0o644)
        try fileAt(etc + "/passwd", BackupFiles.passwd(), owner: jroot, mode: 0o644)
        try fileAt(etc + "/group", BackupFiles.group(), owner: jroot, mode: 0o644)
        try installGate(owner: jroot)
        let key = etc + "/ssh_host_ed25519_key"
        if !FS.exists(key) {
            let (status, out) = try HostCommand.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                                     "jailctl-backup-\(jail)", "-f", key])
            guard status == 0 else { throw JailError(.system, "ssh-keygen for \(key): \(out)") }
            try record("backup-hostkey", "made host key \(try fingerprint(of: key + ".pub"))")
        }
        try check("chown \(key)", chown(key, jroot, jroot))
        try check("chmod \(key)", chmod(key, 0o600))
        try check("chown \(key).pub", chown(key + ".pub", jroot, jroot))
        let hosts = try self.hosts()
        // hosts/ is writable inside the jail: no path below it is followed (AreaFS).
        let hostsFd = try AreaFS.openDir(dir, ["hosts"])
        defer { close(hostsFd) }
        for h in hosts {
            try AreaFS.ensureDir(hostsFd, h.name, owner: jroot, mode: 0o755, path: dir + "/hosts/" + h.name)
            let hostFd = try AreaFS.openDir(dir + "/hosts", [h.name])
            defer { close(hostFd) }
            try AreaFS.ensureDir(hostFd, "current", owner: backup, mode: 0o755, path: current(h.name))
            try AreaFS.ensureDir(hostFd, "log", owner: backup, mode: 0o700, path: dir + "/hosts/\(h.name)/log")
            // The backup user's own, so it can read its snapshots; read-only in the jail.
            try dirAt(snapshots(h.name), owner: backup, mode: 0o700)
        }
        try fileAt(etc + "/authorized_keys", BackupFiles.authorizedKeys(hosts), owner: jroot, mode: 0o644)
    }

    /// The area's files belong to the jail's uid range; if that changed (a `down --purge`
    /// released it and the next `up` leased another), its data moves along, so pushes and
    /// restores keep working. The range in use is remembered in state/uid-base.
    func followIdRange(to base: UInt32) throws {
        let file = stateDir + "/uid-base"
        if let old = (try? FS.readText(file)).flatMap({ UInt32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }), old != base {
            for tree in ["hosts", "snapshots"] {
                let fd = try AreaFS.openDir(dir, [tree])
                defer { close(fd) }
                try AreaFS.shiftOwners(fd, from: old, to: base, size: StateStore.idRangeSize, path: dir + "/" + tree)
            }
            try record("backup-uid-range", "area moved from uid range \(old) to \(base)")
        }
        try FS.writeAtomically(file, "\(base)\n", mode: 0o600)
    }

    /// The gate comes from next to the running jailctl (where `swift build` puts it), or
    /// from JAILCTL_BACKUP_GATE; it is copied into the read-only config, so the image
    /// needs nothing of it and a rebuilt gate reaches the jail at the next `up`.
    static func gateSource() -> String {
        if let e = getenv("JAILCTL_BACKUP_GATE") { return String(cString: e) }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 {
            let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let slash = exe.lastIndex(of: "/") {
                let candidate = String(exe[..<slash]) + "/jailctl-backup-gate"
                if FS.exists(candidate) { return candidate }
            }
        }
        return "/usr/local/libexec/jailctl/jailctl-backup-gate"
    }

    func installGate(owner: UInt32) throws {
        let source = Self.gateSource()
        let bytes: [UInt8]
        do { bytes = try FS.readFile(source) } catch {
            throw JailError(.notFound, "the backup gate \(source) is missing (build it with `swift build`, or set JAILCTL_BACKUP_GATE): \(error)")
        }
        let target = etc + "/gate"
        if (try? FS.readFile(target)) != bytes {
            let tmp = target + ".tmp"
            let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o755)
            guard fd >= 0 else { throw SystemError("open \(tmp)") }
            let ok = bytes.withUnsafeBytes { FS.writeAll(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard ok else { throw SystemError("write \(tmp)") }
            try check("rename \(tmp)", rename(tmp, target))
        }
        try check("chown \(target)", chown(target, owner, owner))
        try check("chmod \(target)", chmod(target, 0o755))
    }

    func dirAt(_ path: String, owner: UInt32, mode: mode_t) throws {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw JailError(.state, "\(path) exists and is not a directory") }
        } else {
            try FS.mkdirs(path, mode: mode)
        }
        try check("chown \(path)", chown(path, owner, owner))
        try check("chmod \(path)", chmod(path, mode))
    }

    func fileAt(_ path: String, _ text: String, owner: UInt32, mode: mode_t) throws {
        if (try? FS.readText(path)) != text { try FS.writeAtomically(path, text, mode: mode) }
        try check("chown \(path)", chown(path, owner, owner))
        try check("chmod \(path)", chmod(path, mode))
    }

    func fingerprint(of pubFile: String) throws -> String {
        let (status, out) = try HostCommand.run(["/usr/bin/ssh-keygen", "-l", "-E", "sha256", "-f", pubFile])
        guard status == 0, let fp = out.split(separator: " ").dropFirst().first else {
            throw JailError(.invalidSpec, "not a usable public key: \(out)")
        }
        return String(fp)
    }

    // MARK: hosts

    public func hosts() throws -> [BackupHost] {
        guard FS.isDirectory(keysDir) else { return [] }
        return try FS.list(keysDir).filter { $0.hasSuffix(".json") }.map { file in
            try JSONDecoder().decode(BackupHost.self, from: Data(try FS.readFile(keysDir + "/" + file)))
        }.sorted { $0.name < $1.name }
    }

    /// Registers a host and its key; the key can push at once (sshd reads the keys file
    /// at each login). A key already bound to another host is refused.
    @discardableResult
    public func addHost(_ name: String, keyText: String) throws -> BackupHost {
        guard BackupManager.validHost(name) else {
            throw JailError(.invalidSpec, "\"\(name)\" is not a valid host name: 1-32 of a-z, 0-9 and '-', not starting with '-'")
        }
        let key = try PublicKey.parse(keyText)
        let existing = try hosts()
        if existing.contains(where: { $0.name == name }) {
            throw JailError(.alreadyRunning, "host \(name) is already registered (remove-host first to change its key)")
        }
        if let other = existing.first(where: { $0.key.base64 == key.base64 }) {
            throw JailError(.invalidSpec, "this key is already bound to host \(other.name); each host needs its own key")
        }
        try prepare()
        let tmp = keysDir + "/.\(name).pub"
        try FS.writeAtomically(tmp, key.line + "\n", mode: 0o600)
        defer { unlink(tmp) }
        let host = BackupHost(name: name, key: key, fingerprint: try fingerprint(of: tmp), addedAt: wallClock())
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try FS.writeAtomically(keysDir + "/\(name).json", String(decoding: try enc.encode(host), as: UTF8.self) + "\n", mode: 0o600)
        try prepare()
        try record("backup-host-added", "host \(name) key \(host.fingerprint)")
        return host
    }

    /// Unregisters a host: its key stops working at once. Its data stays unless `purge`.
    public func removeHost(_ name: String, purge: Bool = false) throws {
        guard BackupManager.validHost(name), FS.exists(keysDir + "/\(name).json") else {
            throw JailError(.notFound, "no host named \(name) (jailctl backup list-hosts)")
        }
        try check("unlink", unlink(keysDir + "/\(name).json"))
        try prepare()
        // The key no longer logs in; a transfer it is running now ends too.
        let ended = try endSessions(of: name)
        if purge {
            let hostsFd = try AreaFS.openDir(dir, ["hosts"])
            defer { close(hostsFd) }
            try AreaFS.remove(hostsFd, name, path: dir + "/hosts/" + name)
            try FS.removeTree(snapshots(name))
            try FS.removeTree(stateDir + "/\(name).json")
        }
        try record("backup-host-removed", "host \(name)\(purge ? ", data purged" : ", data kept")\(ended > 0 ? ", \(ended) running processes ended" : "")")
    }

    public static func validHost(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 32 && name.first != "-"
            && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
    }

    // MARK: events and logs

    func record(_ kind: String, _ detail: String) throws {
        try manager.state.record(event: kind, jail: jail, detail: detail)
        appendLog("backup: \(kind) \(detail)")
    }

    func alert(_ kind: String, _ detail: String) throws {
        guard let notifier else { return try record(kind, detail) }
        notifier.alert(kind: kind, jail: jail, detail: detail)
        appendLog("backup: \(kind) \(detail)")
    }

    /// A line in the jail's log, stamped like the monitor's lines. O_APPEND keeps it whole
    /// next to the monitor's writes; a rotation in between only moves it to the old file.
    func appendLog(_ text: String) {
        let path = manager.root.jailLog(jail)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard fd >= 0 else {
            logger.warning("backup: cannot append to \(path): \(strerrorString(errno)); the event is in the state database")
            return
        }
        defer { close(fd) }
        let line = Array((Self.stamp(wallClock()) + " " + text + "\n").utf8)
        if !line.withUnsafeBytes({ FS.writeAll(fd, $0.baseAddress, $0.count) }) {
            logger.warning("backup: writing to \(path) failed; the event is in the state database")
        }
    }

    static func stamp(_ t: Double) -> String {
        let ms = Int((t - t.rounded(.down)) * 1000)
        let name = SnapshotStamp.name(at: t)  // YYYY-MM-DDTHHMM
        let secs = Int(t) % 60
        let b = Array(name)
        return "\(String(b[0..<13])):\(String(b[13..<15])):\(secs < 10 ? "0" : "")\(secs).\(String(format: "%03d", ms))Z"
    }
}
