#if canImport(Glibc)
import Glibc
#endif

/// One jail's cgroup on this host, in every hierarchy the driver uses: the thin
/// application side of a plan. Values only; every method works on the paths it holds.
public struct JailCgroup: Sendable, Equatable {
    public let version: CgroupVersion
    /// The jail's directory in each hierarchy (v2: exactly one).
    public let directories: [String]
    /// The shared `jailctl.<instance>` parents, removed once no jail is left in them.
    public let instanceDirectories: [String]
    // Where each figure lives; nil when that hierarchy is not mounted (v1).
    let memory: String?
    let pids: String?
    let cpuUsage: String?
    let freezer: String?
    /// Unit tests run against a plain directory tree in which control files do not
    /// appear by themselves; there, writes create them.
    var createsFiles = false

    // MARK: create

    /// Carries a plan out in order. An existing directory is reused (a cgroup left by a
    /// crashed run), but only when it holds no process.
    public func apply(_ writes: [CgroupWrite]) throws {
        for w in writes {
            switch w.action {
            case .mkdir:
                if mkdir(w.path, 0o755) < 0 {
                    guard errno == EEXIST else { throw SystemError("mkdir \(w.path)") }
                    if directories.contains(w.path), let procs = try readOptional(w.path + "/cgroup.procs"),
                       !procs.split(separator: "\n").isEmpty {
                        throw JailError(.busy, "cgroup \(w.path) already exists and has processes in it")
                    }
                }
            case .write(let value):
                try writeValue(w.path, value)
            }
        }
    }

    /// Moves `pid` (with its threads) into the jail's cgroup of every hierarchy. Called
    /// from Launcher.spawn's `outside`, before the child unshares its cgroup namespace.
    public func join(_ pid: Int32) throws {
        for dir in directories { try writeValue(dir + "/cgroup.procs", String(pid)) }
    }

    // MARK: read

    /// The processes in the cgroup, from every hierarchy (on v1 a process could in
    /// principle have been moved out of one of them by root).
    public func processes() throws -> [Int32] {
        var all: Set<Int32> = []
        for dir in directories {
            guard let text = try readOptional(dir + "/cgroup.procs") else { continue }
            for line in text.split(separator: "\n") { if let p = Int32(line) { all.insert(p) } }
        }
        return all.sorted()
    }

    public func stats() throws -> CgroupStats {
        var s = CgroupStats()
        // pids files are named alike on v1 and v2.
        if let d = pids {
            s.pidsCurrent = try readNumber(d + "/pids.current").map { Int($0) }
            s.pidsPeak = try readNumber(d + "/pids.peak").map { Int($0) }
            s.pidsRefused = try readKeyed(d + "/pids.events", "max")
        }
        switch version {
        case .v2:
            if let d = memory {
                s.memoryCurrent = try readNumber(d + "/memory.current")
                s.memoryPeak = try readNumber(d + "/memory.peak")
                s.oomKills = try readKeyed(d + "/memory.events", "oom_kill")
            }
            // cpu.stat is a core file: usage exists even without the cpu controller.
            if let d = cpuUsage { s.cpuUsageMicros = try readKeyed(d + "/cpu.stat", "usage_usec") }
        case .v1:
            if let d = memory {
                s.memoryCurrent = try readNumber(d + "/memory.usage_in_bytes")
                s.memoryPeak = try readNumber(d + "/memory.max_usage_in_bytes")
                // Before Linux 4.13 oom_control has no oom_kill line; failcnt is the
                // nearest figure (limit hits, an upper bound for kills).
                s.oomKills = try readKeyed(d + "/memory.oom_control", "oom_kill") ?? readNumber(d + "/memory.failcnt")
            }
            if let d = cpuUsage { s.cpuUsageMicros = try readNumber(d + "/cpuacct.usage").map { $0 / 1000 } }
        }
        return s
    }

    // MARK: stop

    /// Ends every process in the cgroup and returns when none is left. v2 with
    /// cgroup.kill: one write. Otherwise freeze, SIGKILL each listed pid, thaw, repeat:
    /// frozen processes can neither fork nor exit, so no child escapes the list and no pid
    /// is reused between reading it and signalling it.
    public func kill(timeout: Double = 5) throws {
        let deadline = monotonic() + timeout
        if version == .v2, let d = directories.first, FS.exists(d + "/cgroup.kill") {
            try writeValue(d + "/cgroup.kill", "1")
            while try !processes().isEmpty {
                if monotonic() > deadline { throw JailError(.busy, "cgroup \(d): processes still there \(timeout)s after cgroup.kill") }
                usleep(2000)
            }
            return
        }
        while true {
            let left = try processes()
            if left.isEmpty { return }
            if monotonic() > deadline {
                throw JailError(.busy, "cgroup \(directories.first ?? "?"): processes \(left) still there after \(timeout)s of SIGKILL")
            }
            let frozen = try freeze(true, until: deadline)
            for p in try processes() where p > 0 {
                if Glibc.kill(p, SIGKILL) < 0 && errno != ESRCH { throw SystemError("kill \(p)") }
            }
            if frozen { _ = try freeze(false, until: deadline) }
            usleep(2000)
        }
    }

    /// Freezes or thaws through cgroup.freeze (v2) or freezer.state (v1) and waits until
    /// the kernel says it is done. false: no freezer here, the caller goes without.
    func freeze(_ on: Bool, until deadline: Double) throws -> Bool {
        guard let d = freezer else { return false }
        switch version {
        case .v2:
            guard FS.exists(d + "/cgroup.freeze") else { return false }
            try writeValue(d + "/cgroup.freeze", on ? "1" : "0")
            while try readKeyed(d + "/cgroup.events", "frozen") != (on ? 1 : 0) && monotonic() < deadline { usleep(1000) }
        case .v1:
            guard FS.exists(d + "/freezer.state") else { return false }
            let want = on ? "FROZEN" : "THAWED"
            try writeValue(d + "/freezer.state", want)
            while try readOptional(d + "/freezer.state").map(trim) != want && monotonic() < deadline { usleep(1000) }
        }
        return true
    }

    /// Removes the jail's directories. rmdir fails with EBUSY while killed processes are
    /// still exiting, so it is retried until `timeout`. Missing is fine (idempotent).
    /// The instance directories go too when this was their last jail.
    public func remove(timeout: Double = 2) throws {
        let deadline = monotonic() + timeout
        for dir in directories {
            while rmdir(dir) < 0 {
                if errno == ENOENT { break }
                if errno == EBUSY && monotonic() < deadline {
                    usleep(2000)
                    continue
                }
                throw SystemError("rmdir \(dir)")
            }
        }
        for dir in instanceDirectories where rmdir(dir) < 0 {
            // Other jails of the instance still have their cgroups there: that is fine.
            if errno == ENOENT || errno == EBUSY || errno == ENOTEMPTY { continue }
            throw SystemError("rmdir \(dir)")
        }
    }

    // MARK: files

    func writeValue(_ path: String, _ value: String) throws {
        let flags = O_WRONLY | O_CLOEXEC | (createsFiles ? O_CREAT | O_TRUNC : 0)
        let fd = open(path, flags, 0o644)
        if fd < 0 { throw SystemError("open \(path)") }
        defer { close(fd) }
        // One write(2) per value: the kernel parses each write as a whole command.
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw SystemError("write \(value) to \(path)") }
        if n != bytes.count { throw JailError(.system, "write \(value) to \(path): short write (\(n) of \(bytes.count))") }
    }

    /// nil when the file does not exist (an older kernel, an unmounted controller).
    func readOptional(_ path: String) throws -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw SystemError("open \(path)")
        }
        defer { close(fd) }
        return String(decoding: try FS.readAll(fd, path: path), as: UTF8.self)
    }

    func readNumber(_ path: String) throws -> UInt64? {
        guard let text = try readOptional(path) else { return nil }
        let t = trim(text)
        // "max" is the only non-number in these files; it is not a figure.
        return UInt64(t)
    }

    /// The value of `key` in a "key value" per line file (memory.events, cpu.stat).
    func readKeyed(_ path: String, _ key: String) throws -> UInt64? {
        guard let text = try readOptional(path) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2 && f[0] == key { return UInt64(f[1]) }
        }
        return nil
    }
}

private func trim(_ s: String) -> String {
    String(s.drop(while: { $0 == " " || $0 == "\n" }).reversed().drop(while: { $0 == " " || $0 == "\n" }).reversed())
}
