#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// What the trusted side keeps per host (state/NAME.json, host root only).
public struct BackupHostState: Codable, Sendable, Equatable {
    /// How far the gate's record file has been read.
    public var offset: Int64 = 0
    public var lastPushEnd: Double?
    public var lastPushExit: Int?
    public var lastPushSeconds: Double?
    public var lastSuccess: Double?
    public var lastSnapshot: String?
    /// A push succeeded after the last snapshot was taken.
    public var snapshotDue = false
    public var bytes: Int64 = 0
    public var files: Int = 0
    public var staleAlerted = false
    public var quotaAlerted = false
}

/// One host as `jailctl backup status` shows it.
public struct BackupHostStatus: Codable, Sendable, Equatable {
    public var host: String
    public var fingerprint: String
    public var lastSuccess: Double?
    public var lastPushExit: Int?
    public var bytes: Int64
    public var files: Int
    public var snapshots: Int
    public var lastSnapshot: String?
    /// Blocks in use by current/ and every snapshot, each inode counted once.
    public var diskBytes: Int64
    public var stale: Bool
    public var overQuota: Bool
}

/// A transfer the gate recorded: "push|pull START_MS END_MS EXIT".
public struct GateRecord: Sendable, Equatable {
    public var pull: Bool
    public var start: Double
    public var end: Double
    public var exit: Int

    /// Lines the backup user could have forged are still only hints: bounded, numeric,
    /// and anything else is skipped.
    public static func parse(_ text: String) -> [GateRecord] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 4, f[0] == "push" || f[0] == "pull", let s = Int64(f[1]), let e = Int64(f[2]),
                let x = Int(f[3]), s > 0, e >= s, (0...255).contains(x)
            else { return nil }
            return GateRecord(pull: f[0] == "pull", start: Double(s) / 1000, end: Double(e) / 1000, exit: x)
        }
    }
}

extension BackupManager {
    func loadState(_ host: String) -> BackupHostState {
        guard let bytes = try? FS.readFile(stateDir + "/\(host).json"),
            let s = try? JSONDecoder().decode(BackupHostState.self, from: Data(bytes))
        else { return BackupHostState() }
        return s
    }

    func saveState(_ host: String, _ s: BackupHostState) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try FS.writeAtomically(stateDir + "/\(host).json", String(decoding: try enc.encode(s), as: UTF8.self) + "\n", mode: 0o600)
    }

    /// New lines of the gate's record file since `offset`. The file is the backup user's:
    /// opened without following links, only a regular file, at most 64 KiB a time; a file
    /// that shrank (truncated by that user) is read from its start again.
    func newRecords(_ host: String, state: inout BackupHostState) -> [GateRecord] {
        guard let logFd = try? AreaFS.openDir(dir + "/hosts", [host, "log"]) else { return [] }
        defer { close(logFd) }
        let fd = openat(logFd, "pushes", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return [] }
        if st.st_size < state.offset { state.offset = 0 }
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(state.offset)) }
        guard n > 0 else { return [] }
        // Whole lines only; a line being written stays for the next time. A full buffer
        // without a newline is garbage: skipped, so it cannot stall the reading.
        guard let lastNewline = buf[0..<n].lastIndex(of: 10) else {
            if n == buf.count { state.offset += Int64(n) }
            return []
        }
        state.offset += Int64(lastNewline + 1)
        return GateRecord.parse(String(decoding: buf[0...lastNewline], as: UTF8.self))
    }

    /// The periodic work, for every host: summaries of new transfers (event + log line),
    /// a snapshot after a successful push, retention, quota and freshness alerts. Run by
    /// `jailctl backup check` and by the supervisor.
    /// False when another run held the area's lock (it does the work).
    @discardableResult
    public func periodic(now: Double = wallClock()) throws -> Bool {
        // Nothing to do before the area exists (no `up`, no host yet).
        guard FS.isDirectory(stateDir) else { return true }
        // One run at a time per area (the supervisor's and a `jailctl backup check`).
        let lockPath = stateDir + "/lock"
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0 else { throw SystemError("open \(lockPath)") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            logger.info("backup \(jail): periodic work already running; skipped")
            return false
        }
        for h in try hosts() {
            // One host's trouble (a failing snapshot) must not stop the others' work.
            do {
                try periodic(host: h, now: now)
            } catch {
                logger.error("backup \(jail): host \(h.name): \(error)")
                try record("backup-error", "host \(h.name): \(error)")
            }
        }
        return true
    }

    func periodic(host h: BackupHost, now: Double) throws {
        var s = loadState(h.name)
        defer {
            do { try saveState(h.name, s) } catch { logger.error("backup \(jail): saving the state of \(h.name): \(error)") }
        }
        let records = newRecords(h.name, state: &s)
        let usage = records.isEmpty ? nil : usage(h.name)
        for r in records {
            let seconds = String(format: "%.1f", max(0, r.end - r.start))
            if r.pull {
                try record("backup-pull", "host \(h.name) exit \(r.exit) seconds \(seconds)")
                continue
            }
            s.lastPushEnd = r.end
            s.lastPushExit = r.exit
            s.lastPushSeconds = max(0, r.end - r.start)
            s.bytes = usage?.bytes ?? s.bytes
            s.files = usage?.files ?? s.files
            // 24: some source files vanished during the transfer; the rest arrived.
            if r.exit == 0 || r.exit == 24 {
                s.lastSuccess = r.end
                s.snapshotDue = true
                s.staleAlerted = false
            }
            try record("backup-push", "host \(h.name) exit \(r.exit) seconds \(seconds) bytes \(s.bytes) files \(s.files)")
        }
        if s.snapshotDue {
            // Tried once per successful push: a failure is an event, and the next push
            // tries again (no event every minute for one broken tree).
            s.snapshotDue = false
            s.lastSnapshot = try snapshot(h.name, now: now)
        }
        try applyRetention(h.name)
        try checkQuota(h.name, state: &s)
        let since = s.lastSuccess ?? h.addedAt
        if now - since > spec.maxAge && !s.staleAlerted {
            s.staleAlerted = true
            let when = s.lastSuccess.map { "last successful push \(Self.stamp($0))" } ?? "no successful push since it was added"
            try alert("backup-stale", "host \(h.name): \(when), more than \(Int(spec.maxAge))s ago")
        }
    }

    func checkQuota(_ host: String, state s: inout BackupHostState) throws {
        let hostFd = try AreaFS.openDir(dir + "/hosts", [host])
        defer { close(hostFd) }
        let flag = dir + "/hosts/\(host)/QUOTA-EXCEEDED"
        guard let quota = spec.quota else { return try AreaFS.remove(hostFd, "QUOTA-EXCEEDED", path: flag) }
        let used = usage(host).bytes
        if used > Int64(clamping: quota) {
            let text = "host \(host) uses \(used) bytes, over its quota of \(quota) bytes; pushes are refused until it is under (ask the backup server's admin)\n"
            try AreaFS.writeFile(hostFd, "QUOTA-EXCEEDED", text, owner: try ids().root, mode: 0o644, path: flag)
            if !s.quotaAlerted {
                s.quotaAlerted = true
                try alert("backup-quota", "host \(host) uses \(used) bytes, quota \(quota)")
            }
        } else {
            try AreaFS.remove(hostFd, "QUOTA-EXCEEDED", path: flag)
            s.quotaAlerted = false
        }
    }

    /// Usage of a host's current/ and, with `snapshots`, of those snapshots too.
    func usage(_ host: String, snapshots snaps: [String] = []) -> (bytes: Int64, files: Int, disk: Int64) {
        var seen: Set<[UInt64]> = []
        var total: (bytes: Int64, files: Int, disk: Int64) = (0, 0, 0)
        let trees = [(dir + "/hosts", [host, "current"])] + snaps.map { (dir + "/snapshots", [host, $0]) }
        for (base, components) in trees {
            guard let fd = try? AreaFS.openDir(base, components) else { continue }
            defer { close(fd) }
            let u = AreaFS.usage(fd, seen: &seen)
            total = (total.bytes + u.bytes, total.files + u.files, total.disk + u.disk)
        }
        return total
    }

    /// Copies current/ into snapshots/NAME/STAMP (SnapshotCopier): unchanged files are
    /// hard links to the previous snapshot, changed ones copies, never links to current/
    /// (the client owns those inodes and could change them in place). Done by root here,
    /// but through descriptors only, so nothing the jail planted is ever followed.
    @discardableResult
    public func snapshot(_ host: String, now: Double = wallClock()) throws -> String {
        let (_, backup) = try ids()
        let base = snapshots(host)
        try dirAt(base, owner: backup, mode: 0o700)
        var name = SnapshotStamp.name(at: now)
        var n = 2
        while FS.exists(base + "/" + name) {
            name = SnapshotStamp.name(at: now) + "-\(n)"
            n += 1
        }
        let previous = try FS.list(base).filter { SnapshotStamp($0) != nil }.max()
        let tmp = base + "/.tmp-" + name
        try FS.removeTree(tmp)
        let started = monotonic()
        let currentFd = try AreaFS.openDir(dir + "/hosts", [host, "current"])
        defer { close(currentFd) }
        try check("mkdir \(tmp)", mkdir(tmp, 0o700))
        let copier: SnapshotCopier
        do {
            let destFd = try AreaFS.openDir(base, [".tmp-" + name])
            defer { close(destFd) }
            let prevFd = try previous.map { try AreaFS.openDir(base, [$0]) }
            defer { if let prevFd { close(prevFd) } }
            copier = try SnapshotCopier.copy(source: currentFd, dest: destFd, previous: prevFd)
        } catch {
            try FS.removeTree(tmp)
            throw JailError(.system, "snapshot of \(host) failed: \(error)")
        }
        try check("rename \(tmp)", rename(tmp, base + "/" + name))
        try record("backup-snapshot", "host \(host) snapshot \(name) files \(copier.files) linked \(copier.linked) copied \(copier.copiedBytes) bytes seconds \(String(format: "%.1f", monotonic() - started))")
        return name
    }

    func applyRetention(_ host: String) throws {
        let base = snapshots(host)
        guard FS.isDirectory(base) else { return }
        let policy = SnapshotRetention(daily: spec.keepDaily, weekly: spec.keepWeekly, monthly: spec.keepMonthly)
        for old in policy.prune(try FS.list(base)) {
            try FS.removeTree(base + "/" + old)
            try record("backup-snapshot-pruned", "host \(host) snapshot \(old)")
        }
    }

    public func status(now: Double = wallClock()) throws -> [BackupHostStatus] {
        try hosts().map { h in
            let s = loadState(h.name)
            let snaps = ((try? FS.list(snapshots(h.name))) ?? []).filter { SnapshotStamp($0) != nil }
            let cur = usage(h.name)
            let all = usage(h.name, snapshots: snaps)
            let flag = (try? AreaFS.openDir(dir + "/hosts", [h.name])).map { fd in
                defer { close(fd) }
                var st = stat()
                return fstatat(fd, "QUOTA-EXCEEDED", &st, AT_SYMLINK_NOFOLLOW) == 0
            } ?? false
            return BackupHostStatus(
                host: h.name, fingerprint: h.fingerprint, lastSuccess: s.lastSuccess, lastPushExit: s.lastPushExit,
                bytes: cur.bytes, files: cur.files, snapshots: snaps.count, lastSnapshot: snaps.max(),
                diskBytes: all.disk, stale: now - (s.lastSuccess ?? h.addedAt) > spec.maxAge, overQuota: flag)
        }
    }
}
