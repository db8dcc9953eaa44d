#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch
import Logging

/// A jail as `status` reports it, checked against the kernel.
public struct JailStatus: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable { case running, exited, stopped }
    public var name: String
    public var state: State
    public var pid: Int32?
    public var image: String
    public var imageHash: String
    public var startedAt: Double?
    public var endedAt: Double?
    public var exitCode: Int32?
    public var signal: Int32?
    public var oomKilled = false
    public var crashLoop = false
    public var restarts = 0
    /// The image this run started from no longer matches its host sources (a package
    /// upgrade): `jailctl build` and a restart pick up the new files.
    public var staleImage = false
    /// The supervisor's last verdict of a running jail with `[health]`.
    public var health: HealthState?

    public var summary: String {
        if crashLoop { return "crash-loop" }
        switch state {
        case .running: return health.map { "running (\($0.rawValue))" } ?? "running"
        case .stopped: return "stopped"
        case .exited:
            if let s = signal { return oomKilled ? "exited (signal \(s), OOM)" : "exited (signal \(s))" }
            if let c = exitCode { return "exited (code \(c))" }
            return "exited"
        }
    }
}

/// The jail lifecycle: `up` (validate, build, plan, launch, record, or roll back),
/// `down`, `status`, `exec`. Each jail's operations are serialized by a lock file.
public final class JailManager {
    public let root: StateRoot
    public let specsDirectory: String
    public let state: StateStore
    /// `jailctl.toml` of the spec directory (defaults when there is none).
    public let host: HostSettings
    let logger: Logger
    /// Tests only: runs in `up` between the image's resolution and the launch.
    var testHookImageResolved: ((JailSpec) throws -> Void)?

    /// Refuses a broken `jailctl.toml` up front, with its diagnostics: the pool and the
    /// uplinks shape every network change, so no command guesses them.
    public init(root: StateRoot, specsDirectory: String, logger: Logger = Logger(label: "jailctl")) throws {
        self.root = root
        self.specsDirectory = specsDirectory
        self.logger = logger
        let (host, diagnostics) = SpecLoader.loadHost(directory: specsDirectory)
        guard let host else {
            throw JailError(.invalidSpec, diagnostics.filter { $0.severity == .error }.map(\.description).joined(separator: "\n"))
        }
        self.host = host
        try root.prepare()
        state = try StateStore(path: root.database)
    }

    public var images: ImageStore { ImageStore(root: root, state: state) }

    /// Addresses, veth pairs and the instance's nftables table.
    public lazy var network = NetworkManager(instance: root.instance, store: state, pool: host.pool, pool6: host.pool6, uplinks: host.uplinks)

    /// The host's cgroup layout, read once per process.
    public lazy var cgroups: Result<CgroupDriver, Error> = Result { try CgroupDriver.host() }

    public func cgroupDriver() throws -> CgroupDriver { try cgroups.get() }

    /// The jail's cgroup (paths only; nothing is created).
    public func cgroup(of jail: String) throws -> JailCgroup {
        try cgroupDriver().cgroup(jail: jail, instance: root.instance)
    }

    public static func cgroupLimits(_ l: LimitsSpec) -> CgroupLimits {
        CgroupLimits(memory: l.memory, memorySwap: l.memorySwap, pids: l.pids, cpu: l.cpu, cpuWeight: l.cpuWeight)
    }

    // MARK: specs

    /// Loads every spec; any error diagnostic refuses the operation with all messages.
    /// `lenient` (the daemon's own work: restarts, health checks): the files without
    /// errors, the errors logged; one broken file must not stop every other jail's
    /// restarts. What a sysadmin runs stays strict.
    public func loadSpecs(lenient: Bool = false, portWarnings: Bool = true) throws -> SpecSet {
        let (set, diagnostics) = SpecLoader.load(directory: specsDirectory, portWarnings: portWarnings)
        let errors = diagnostics.filter { $0.severity == .error }
        for w in diagnostics where w.severity != .error { logger.warning("\(w.description)") }
        if !errors.isEmpty {
            let text = errors.map(\.description).joined(separator: "\n")
            guard lenient else { throw JailError(.invalidSpec, text) }
            logger.error("spec errors (those jails are left out): \(text)")
        }
        return set
    }

    public func jailSpec(_ name: String, in set: SpecSet) throws -> JailSpec {
        if let n = SpecName.parse(name).name, n.isInstance { return try instanceSpec(n, in: set) }
        guard let spec = set.jails[name] else {
            let known = set.jails.keys.sorted().joined(separator: ", ")
            throw JailError(.notFound, "no jail named \(name) in \(specsDirectory)/Jails (known: \(known.isEmpty ? "none" : known))")
        }
        return spec
    }

    // MARK: images

    /// Users and groups that the jails of an image run as, for its passwd and group.
    public static func identities(of image: String, in set: SpecSet) -> (users: [String], groups: [String]) {
        var users: Set<String> = []
        var groups: Set<String> = []
        let samples = set.templates.values.compactMap {
            SpecLoader.instantiate($0, values: .sample(base: $0.base), nameInstance: false).0
        }
        for j in Array(set.jails.values) + samples where j.image == image {
            // A jail's own users (and their groups) live in its own passwd, never the image's.
            let own = Set(j.users.map(\.name))
            func user(_ n: String) { if !own.contains(n) { users.insert(n) } }
            func group(_ g: String) { if !own.contains(g) { groups.insert(g) } }
            if case .name(let n) = j.user { user(n) }
            if case .name(let g)? = j.group { group(g) }
            for v in j.volumes {
                if case .name(let n)? = v.owner { user(n) }
                if case .name(let g)? = v.group { group(g) }
            }
        }
        return (users.sorted(), groups.sorted())
    }

    public func build(_ imageName: String, set: SpecSet? = nil, builder: ImageBuilder? = nil,
                      reuse: Bool = true) throws -> ImageStore.BuildReport {
        let set = try set ?? loadSpecs()
        guard let spec = set.images[imageName] else {
            throw JailError(.notFound, "no image named \(imageName) in \(specsDirectory)/Images")
        }
        let ids = Self.identities(of: imageName, in: set)
        return try images.build(spec, users: ids.users, groups: ids.groups, builder: builder ?? ImageBuilder.host(),
                                reuse: reuse, recordEvent: true)
    }

    /// What changed since `image` was built (empty: up to date); nil when it is not built.
    public func imageChanges(_ image: String, set: SpecSet) throws -> [ChangedSource]? {
        guard try images.path(of: image) != nil else { return nil }
        let ids = Self.identities(of: image, in: set)
        return try images.staleness(of: image, parameters: ImageBuilder.parameters(users: ids.users, groups: ids.groups))
    }

    /// Running jails whose image changed since they started: a newer build of it exists,
    /// or the sources of the version they run changed on the host.
    public func staleJails(set: SpecSet) throws -> [String] {
        var out: [String] = []
        for r in try state.jails() where r.state == .running && isAlive(r) {
            let current = try state.image(r.image)
            if current?.hash != r.imageHash || images.isStale(imageHash: r.imageHash) { out.append(r.name) }
        }
        return out.sorted()
    }

    // MARK: lifecycle

    public struct UpResult: Sendable {
        public var status: JailStatus
        public var alreadyRunning: Bool
    }

    /// Starts a jail detached, under a monitor that records its exit. An explicit `up`
    /// also clears a crash loop; the supervisor's restarts (`restart: true`) record the
    /// failure count that drives the backoff (`failures`, else the previous one).
    public func up(_ name: String, restart: Bool = false, failures: Int? = nil) throws -> UpResult {
        let lock = try JailLock(root: root, jail: name)
        defer { lock.release() }
        let previous = try state.jail(name)
        if let current = try currentStatus(of: name), current.state == .running {
            return UpResult(status: current, alreadyRunning: true)
        }
        if restart, let p = previous, !p.wanted || p.crashLoop {
            throw JailError(.busy, "jail \(name) is no longer wanted up; not restarting it")
        }
        let set = try loadSpecs(lenient: restart)
        let spec = try jailSpec(name, in: set)
        try writeTenantConfig(spec)
        // A backup jail's area (its volumes' sources, sshd's files, the host key) first.
        if let b = spec.backup { try BackupManager(jail: name, spec: b, manager: self, logger: logger).prepare() }
        let prepared = try prepare(spec, set: set, pinImage: true)
        var pin = prepared.pin
        defer { if let p = pin { releasePin(p) } }
        try testHookImageResolved?(spec)
        var undo = Rollback(logger: logger)
        defer { undo.run() }
        let run = root.jailRun(name)
        try FS.removeTree(run)
        // 0711: a jail in a user namespace is "other" to these directories and must pass
        // through them to its root; nothing here is listable.
        try check("mkdir \(run)", mkdir(run, 0o711))
        undo.add("remove \(run)") {
            // A monitor that saw the launch fail writes "exit" here as we remove the
            // directory; a second pass takes what it wrote (after that, its writes land
            // in a removed directory and fail harmlessly).
            for attempt in 1...3 {
                do {
                    try FS.removeTree(run)
                    return
                } catch let e as SystemError where e.errno == ENOTEMPTY && attempt < 3 {
                    usleep(5000)
                }
            }
        }
        var plan = try launchPlan(spec, prepared: prepared, makeDirectories: true)
        try makeVolumes(prepared.creations, idMap: plan.idMap, undo: &undo)
        try makeHomes(spec, prepared: prepared, idMap: plan.idMap, undo: &undo)
        try writeGeneratedFiles(spec, address: nil)
        try writeIdentityFiles(spec, prepared: prepared)
        plan.log = LogTarget(directory: root.logDir, name: name + ".log", maxBytes: spec.supervision.logMaxBytes,
                             keep: spec.supervision.logKeep)
        plan.log?.syslogSocket = syslogSocket(name)
        let nullFd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        if nullFd < 0 { throw SystemError("open /dev/null") }
        defer { close(nullFd) }
        let runFd = open(run, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if runFd < 0 { throw SystemError("open \(run)") }
        defer { close(runFd) }
        let cg = try cgroupDriver().create(jail: name, instance: root.instance, limits: Self.cgroupLimits(spec.isolation.limits))
        undo.add("remove the cgroup") {
            try cg.kill()
            try cg.remove()
        }
        let started = wallClock()
        let child = try Launcher.spawn(plan, stdio: .init(stdin: nullFd, stdout: -1, stderr: -1), statusDir: runFd,
                                       outside: { pid in
            try cg.join(pid)
            // The jail's address and firewall are in place before it runs an instruction.
            if spec.network.mode == .private {
                // A lease the jail held before stays its own; one made by this failed
                // `up` goes with it.
                let hadLease = try self.network.ipam.existing(jail: name) != nil
                let hadLease6 = try IPAM6.existing(jail: name, store: self.state) != nil
                let a = try self.network.attach(jail: name, pid: pid, spec: spec.network)
                // Steps of their own, run last to first: one that fails leaves the others
                // to run (a veth that will not go must not keep the lease and elements).
                if !hadLease6 { undo.add("release the IPv6 lease") { try IPAM6.release(jail: name, store: self.state) } }
                if !hadLease { undo.add("release the address lease") { try self.network.ipam.release(jail: name) } }
                undo.add("forget the link hints") { try LinkIndex(root: self.root).forget(jail: name, links: spec.network.links) }
                undo.add("remove the jail's elements") {
                    let entry = self.attachedJail(name)
                    try FS.removeTree(run + "/network")
                    if let entry { try self.updateFirewall(.delete, jail: entry) } else { try self.applyFirewall() }
                }
                undo.add("detach the network") { try self.network.detach(a) }
                // Hints first: a jail's record must never exist without them (LinkIndex).
                try LinkIndex(root: self.root).record(jail: name, links: spec.network.links)
                let line = [a.hostInterface, a.jailAddress] + (a.jailAddress6.map { [$0] } ?? [])
                try FS.writeAtomically(run + "/network", line.joined(separator: " ") + "\n", mode: 0o600)
                // The policy it started with: later renders never depend on the spec files
                // being readable then (a broken file must not widen a running jail's rules).
                try FS.writeAtomically(run + "/firewall", FirewallPolicy.render(spec.network), mode: 0o600)
                try self.writeGeneratedFiles(spec, address: a.jailAddress, address6: a.jailAddress6)
                guard let entry = self.attachedJail(name) else {
                    throw JailError(.system, "jail \(name): its network record in \(run) did not read back; see the log above, then `jailctl up \(name)` again")
                }
                try self.updateFirewall(.add, jail: entry)
                if let relay = try Relay6.start(for: entry, hostNetns: self.network.hostNetns, jailPid: pid) {
                    undo.add("stop the [::1] relay") { relay.stop(logger: self.logger) }
                    try FS.writeAtomically(run + "/relay6", relay.record, mode: 0o600)
                }
            }
        })
        undo.add("stop the jail") { try self.kill(pid: child.pid, startTime: child.startTime, signal: SIGKILL) }
        let record = JailRecord(name: name, image: spec.image, imageHash: prepared.image.hash, state: .running,
                                pid: child.pid, startTime: Int64(child.startTime), monitorPid: child.monitor,
                                startedAt: started, endedAt: nil, exitStatus: nil, specFile: spec.file,
                                wanted: true, failures: restart ? failures ?? previous?.failures ?? 0 : 0, crashLoop: false)
        // One transaction: the record takes over from the pin.
        try state.save(record, releasing: pin)
        pin = nil
        try state.record(event: restart ? "restart" : "start", jail: name, detail: "pid \(child.pid) image \(spec.image)@\(prepared.image.hash.prefix(12))")
        undo.commit()
        if !restart {
            // Tell a running supervisor about the jail (nothing happens when none runs).
            _ = Supervisor.ask(root, "check \(name)")
        }
        return UpResult(status: status(from: record, exit: nil), alreadyRunning: false)
    }

    /// Runs a jail in the foreground, without a monitor, and returns its wait status.
    /// The launch path of `scripts/bench` and of `jailctl run`.
    public func runForeground(_ name: String, stdio: Launcher.Stdio = .inherit) throws -> Int32 {
        let lock = try JailLock(root: root, jail: name)
        defer { lock.release() }
        // The run directory (writable layer, mount points) is per jail: one copy at a time.
        if let current = try currentStatus(of: name), current.state == .running {
            throw JailError(.alreadyRunning, "jail \(name) is running detached (pid \(current.pid ?? 0)); `jailctl down \(name)` first")
        }
        let set = try loadSpecs()
        let spec = try jailSpec(name, in: set)
        if spec.network.mode == .private {
            throw JailError(.invalidSpec, "jail \(name): `run` does not attach a private network yet; use `jailctl up \(name)`")
        }
        let prepared = try prepare(spec, set: set, pinImage: true)
        // Held for the whole run: a foreground jail has no record that would keep gc off.
        defer { if let p = prepared.pin { releasePin(p) } }
        let run = root.jailRun(name)
        try FS.removeTree(run)
        try check("mkdir \(run)", mkdir(run, 0o711))
        defer {
            do { try FS.removeTree(run) } catch { logger.error("jail \(name): removing \(run): \(error)") }
        }
        let plan = try launchPlan(spec, prepared: prepared, makeDirectories: true)
        var undo = Rollback(logger: logger)
        defer { undo.run() }
        try makeVolumes(prepared.creations, idMap: plan.idMap, undo: &undo)
        try makeHomes(spec, prepared: prepared, idMap: plan.idMap, undo: &undo)
        try writeIdentityFiles(spec, prepared: prepared)
        let cg = try cgroupDriver().create(jail: name, instance: root.instance, limits: Self.cgroupLimits(spec.isolation.limits))
        defer {
            do {
                try cg.kill()
                try cg.remove()
            } catch {
                logger.error("jail \(name): removing its cgroup: \(error)")
            }
        }
        let child = try Launcher.spawn(plan, stdio: stdio, statusDir: nil, outside: { try cg.join($0) })
        undo.commit()
        var status: Int32 = 0
        while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    public struct DownResult: Sendable {
        public var wasRunning: Bool
        public var status: JailStatus?
    }

    /// Stops a jail: stop_signal, stop_timeout, then SIGKILL to its pid 1 (which takes
    /// every process of its pid namespace with it), and removes what `up` made.
    public func down(_ name: String, timeout: Double? = nil) throws -> DownResult {
        let lock = try JailLock(root: root, jail: name)
        defer { lock.release() }
        guard var record = try state.jail(name) else {
            try FS.removeTree(root.jailRun(name))
            return DownResult(wasRunning: false, status: nil)
        }
        // Unwanted first, so a supervisor that sees the exit does not restart it.
        try state.setSupervision(name, failures: 0, crashLoop: false, wanted: false)
        let wasRunning = isAlive(record)
        if wasRunning {
            // `down` must work even when the spec files are broken or gone: then the
            // defaults (SIGTERM, 10 s) apply, and the reason is logged.
            var spec: JailSpec?
            do { spec = try jailSpec(name, in: loadSpecs()) } catch {
                logger.warning("jail \(name): stopping with default signal and timeout: \(error)")
            }
            let signal = spec?.stopSignal ?? SIGTERM
            let grace = timeout ?? spec?.stopTimeout ?? 10
            try stop(record, signal: signal, grace: grace)
        }
        let exit = waitForExitFile(name, seconds: wasRunning ? 5 : 0)
        try noteOOM(name, since: record.startedAt)
        // Whatever is left in the cgroup (a process that escaped the pid namespace's end
        // cannot exist, but a cgroup is the authority on membership) goes now.
        let cg = try cgroup(of: name)
        try cg.kill()
        try cg.remove()
        // The relay ends with the jail by itself; waiting for it frees its ports for an
        // immediate `up`.
        do {
            try recordedRelay(root.jailRun(name))?.stop(logger: logger)
        } catch {
            // Not fatal to `down`: the relay ends with the jail by itself.
            logger.error("jail \(name): reading its [::1] relay record: \(error)")
        }
        if FS.exists(root.jailRun(name) + "/network") {
            // The jail's netns is gone with its last process, and its veth with it.
            let entry = attachedJail(name)
            try FS.removeTree(root.jailRun(name) + "/network")
            if let entry {
                try updateFirewall(.delete, jail: entry)
                try LinkIndex(root: root).forget(jail: name, links: entry.links)
            } else {
                try applyFirewall()
            }
        }
        record = try state.jail(name) ?? record
        record.wanted = false
        if record.state == .running {
            record.state = wasRunning ? .stopped : .exited
            record.exitStatus = exit?.status
            record.endedAt = exit?.endedAt ?? wallClock()
        } else {
            record.state = .stopped
        }
        try state.save(record)
        try state.record(event: "stop", jail: name, detail: exit.map { "wait status \($0.status)" } ?? "no exit status")
        try FS.removeTree(root.jailRun(name))
        return DownResult(wasRunning: wasRunning, status: status(from: record, exit: exit))
    }

    // MARK: order

    /// Every jail of the spec set, each after the jails its `after` names (validation has
    /// already refused cycles and unknown names); ties by name, so the order is stable.
    public static func startOrder(_ set: SpecSet) -> [String] {
        var order: [String] = []
        var placed: Set<String> = []
        func place(_ name: String) {
            guard !placed.contains(name), let spec = set.jails[name] else { return }
            placed.insert(name)
            for dep in spec.supervision.after.sorted() { place(dep) }
            order.append(name)
        }
        for name in set.jails.keys.sorted() { place(name) }
        return order
    }

    // MARK: network

    /// The firewall entry of every jail whose run directory holds a network attachment.
    public func attachedJails() throws -> [NetworkJail] {
        try FS.list(root.runDir).compactMap { attachedJail($0) }
    }

    /// One jail's firewall entry from its run directory (`network`: interface and
    /// address, `firewall`: the policy recorded at attach); nil when it is not attached.
    public func attachedJail(_ name: String) -> NetworkJail? {
        guard let text = try? FS.readText(root.jailRun(name) + "/network") else { return nil }
        let f = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        guard f.count >= 2, let address = IPv4Address(f[1]) else { return nil }
        // A jail without a readable policy gets nothing: no forwards, no links, no
        // egress. Failing closed.
        var net = NetworkSpec()
        net.egress = .none
        do {
            net = try FirewallPolicy.parse(try FS.readText(root.jailRun(name) + "/firewall"))
        } catch {
            logger.warning("jail \(name): no readable firewall policy (\(error)); it gets no forwards, links or egress until restarted")
        }
        return NetworkJail(name: name, address: address, address6: f.count >= 3 ? IPv6Address(f[2]) : nil, hostInterface: f[0], ports: net.ports,
                           egress: net.egress, links: net.links)
    }

    /// One jail's elements into or out of the table, as a diff of the rendered elements
    /// with and without it over the jails it is linked with (one `nft -f` transaction, the
    /// rules untouched). It reads the records of those jails only (`LinkIndex`), so the
    /// cost of an `up` or `down` stays flat with the number of jails. The whole table
    /// instead when there is none yet, when the last jail leaves, or when the change does
    /// not apply (the table was changed by hand).
    func updateFirewall(_ change: Ruleset.ElementChange, jail: NetworkJail) throws {
        // One change at a time per state root, from reading the attached jails to
        // applying: an `up` of A (linking to B) computed while `down` of B applies its
        // own change would otherwise add A's link to B's address after B took it away.
        let lock = try firewallLock()
        defer { lock.release() }
        guard try anotherJailAttached(than: jail.name) else { return try applyFirewallLocked() }
        // A state root from before the index: one full scan makes it.
        let index = LinkIndex(root: root)
        if !index.isComplete { try index.rebuild(from: try attachedJails()) }
        let text = try firewallChange(change, jail: jail)
        if text.isEmpty { return }
        do {
            try network.nft.apply(text)
        } catch {
            logger.info("element change for jail \(jail.name) did not apply (\(error)); applying the whole table")
            try applyFirewallLocked()
        }
    }

    /// Taken after a jail's own lock, never before it. (A name no jail can have: jail
    /// names do not start with a dot.)
    func firewallLock() throws -> JailLock { try JailLock(root: root, jail: ".firewall") }

    /// The element change that `up` (`.add`) or `down` (`.delete`) of `jail` applies
    /// (`network show --jail`). Empty: nothing.
    public func firewallChange(_ change: Ruleset.ElementChange, jail: NetworkJail) throws -> String {
        network.ruleset.elementDiff(change, jail: jail, others: try linkedJails(jail))
    }

    /// Whether a jail other than `name` is attached (a look at names, no record read).
    func anotherJailAttached(than name: String) throws -> Bool {
        guard FS.isDirectory(root.runDir) else { return false }
        var st = stat()
        return try FS.list(root.runDir).contains { $0 != name && lstat(root.jailRun($0) + "/network", &st) == 0 }
    }

    /// The attached jails that `jail` links to or that link to it: the only ones whose
    /// elements its arrival or departure can change (`Ruleset.related`).
    func linkedJails(_ jail: NetworkJail) throws -> [NetworkJail] {
        let index = LinkIndex(root: root)
        guard index.isComplete else { return Ruleset.related(to: jail, among: try attachedJails()) }
        let names = Set(jail.links.map(\.jail)).union(try index.linkers(of: jail.name)).subtracting([jail.name])
        return Ruleset.related(to: jail, among: names.sorted().compactMap { attachedJail($0) })
    }

    /// Starts the [::1] relay of every running jail that has such forwards and no live
    /// relay (killed by hand, say); returns their names. For `network reapply` and the
    /// daemon's reconcile. Takes no jail lock (the daemon must never wait on an `up`
    /// that waits on it): a jail that is stopping takes a relay started here with it,
    /// and a jail being started is skipped, its record not yet saying it runs.
    /// One jail's failure does not keep the others' relays from starting: every failure is
    /// logged, and thrown together at the end.
    @discardableResult
    public func ensureRelays() throws -> [String] {
        var started: [String] = []
        var failed: [String] = []
        for entry in try attachedJails() where entry.ports.contains(where: \.isIPv6Loopback) {
            do {
                if try ensureRelay(entry) { started.append(entry.name) }
            } catch {
                logger.error("jail \(entry.name): starting its [::1] relay: \(error)")
                failed.append("\(entry.name): \(error)")
            }
        }
        if !failed.isEmpty {
            let also = started.isEmpty ? "" : "; started: \(started.joined(separator: ", "))"
            throw JailError(.system, "[::1] relays not started for \(failed.count) jail(s): \(failed.joined(separator: "; "))\(also)")
        }
        return started
    }

    /// Starts the jail's relay unless it runs or the jail does not; true when started.
    private func ensureRelay(_ entry: NetworkJail) throws -> Bool {
        let run = root.jailRun(entry.name)
        if let relay = try recordedRelay(run), relay.isRunning { return false }
        guard let record = try state.jail(entry.name), record.state == .running, isAlive(record) else { return false }
        guard let relay = try Relay6.start(for: entry, hostNetns: network.hostNetns, jailPid: record.pid) else { return false }
        try FS.writeAtomically(run + "/relay6", relay.record, mode: 0o600)
        return true
    }

    /// The relay recorded in a jail's run directory; nil when there is no record (a jail
    /// without [::1] forwards) or it does not parse.
    private func recordedRelay(_ run: String) throws -> Relay6? {
        do {
            return Relay6(record: try FS.readText(run + "/relay6"))
        } catch let e as SystemError where e.errno == ENOENT {
            return nil
        }
    }

    /// Renders the instance's table from the attached jails and applies it in one
    /// transaction; with no jail left, the table goes.
    public func applyFirewall() throws {
        let lock = try firewallLock()
        defer { lock.release() }
        try applyFirewallLocked()
    }

    func applyFirewallLocked() throws {
        let jails = try attachedJails()
        let index = LinkIndex(root: root)
        if !index.isComplete { try index.rebuild(from: jails) }
        if jails.isEmpty {
            try network.teardown()
        } else {
            try network.apply(network.render(jails: jails))
        }
    }

    /// `down --purge`: the jail is stopped and forgotten: its address lease, uid range,
    /// record, events and logs go. Its volumes (host data) are never touched.
    public func purge(_ name: String) throws {
        _ = try down(name)
        let lock = try JailLock(root: root, jail: name)
        defer { lock.release() }
        try network.ipam.release(jail: name)
        try IPAM6.release(jail: name, store: state)
        try state.releaseIdRange(for: name)
        try state.deleteJail(name)
        try state.db.write { try $0.execute(sql: "DELETE FROM events WHERE jail = ?", arguments: [name]) }
        let log = root.jailLog(name)
        for suffix in [""] + (1...100).map({ ".\($0)" }) where FS.exists(log + suffix) {
            try check("unlink \(log + suffix)", unlink(log + suffix))
        }
    }

    // MARK: status

    /// A jail's status, with whether its image went stale (a walk over the image's
    /// sources: for `status`, not for the launch path).
    public func status(of name: String) throws -> JailStatus? {
        try currentStatus(of: name).map(withStaleness)
    }

    public func statuses() throws -> [JailStatus] {
        try state.jails().map { withStaleness(try refreshed($0)) }
    }

    func currentStatus(of name: String) throws -> JailStatus? {
        guard let r = try state.jail(name) else { return nil }
        return try refreshed(r)
    }

    func withStaleness(_ s: JailStatus) -> JailStatus {
        var s = s
        if s.state == .running { s.staleImage = images.isStale(imageHash: s.imageHash) }
        return s
    }

    /// Checks a "running" record against the kernel and records an exit that happened
    /// while nobody was looking.
    func refreshed(_ r: JailRecord) throws -> JailStatus {
        guard r.state == .running, !isAlive(r) else { return status(from: r, exit: nil) }
        let exit = waitForExitFile(r.name, seconds: 0.5)
        try noteOOM(r.name, since: r.startedAt)
        _ = try state.markExited(r.name, startTime: r.startTime, exitStatus: exit?.status, endedAt: exit?.endedAt ?? wallClock(),
                                 detail: exit.map { "wait status \($0.status)" } ?? "exit status lost")
        guard let now = try state.jail(r.name) else { return status(from: r, exit: exit) }
        return status(from: now, exit: exit)
    }

    /// Records an OOM kill the kernel counted in the jail's cgroup (once per run).
    func noteOOM(_ name: String, since: Double) throws {
        guard let kills = try? cgroup(of: name).stats().oomKills, kills > 0 else { return }
        if try state.events(jail: name, limit: 20).contains(where: { $0.kind == "oom" && $0.time >= since }) { return }
        try state.record(event: "oom", jail: name, detail: "the kernel's OOM killer ended \(kills) process(es) at the jail's memory limit")
    }

    /// Memory, processes and CPU time of a jail, from its cgroup.
    public func stats(of name: String) throws -> CgroupStats {
        try cgroup(of: name).stats()
    }

    func oomKilled(_ r: JailRecord) -> Bool {
        ((try? state.events(jail: r.name, limit: 20)) ?? []).contains { $0.kind == "oom" && $0.time >= r.startedAt }
    }

    func status(from r: JailRecord, exit: ExitFile?) -> JailStatus {
        let ws = r.exitStatus ?? exit?.status
        let state: JailStatus.State = r.state == .running ? .running : (r.state == .stopped ? .stopped : .exited)
        var s = JailStatus(name: r.name, state: state, pid: state == .running ? r.pid : nil, image: r.image,
                           imageHash: r.imageHash, startedAt: r.startedAt, endedAt: r.endedAt)
        if state != .running, let ws {
            if ws & 0x7f == 0 { s.exitCode = (ws >> 8) & 0xff } else { s.signal = ws & 0x7f }
        }
        if state != .running { s.oomKilled = oomKilled(r) }
        s.crashLoop = r.crashLoop
        s.restarts = r.failures
        if state == .running, let text = try? FS.readText(root.jailRun(r.name) + "/health") {
            s.health = text.split(separator: " ").first.flatMap { HealthState(rawValue: String($0)) }
        }
        return s
    }

    func isAlive(_ r: JailRecord) -> Bool {
        r.pid > 0 && jl_proc_start_time(r.pid) == UInt64(r.startTime)
    }

    // MARK: exec

    /// Runs a command inside a running jail with the jail's user and root.
    public func exec(_ name: String, argv: [String], stdio: Launcher.Stdio = .inherit, tty: Bool = false) throws -> Int32 {
        let (plan, pid) = try execPlan(name, argv: argv)
        return try Launcher.exec(plan, jailPid: pid, namespaces: plan.namespaces, stdio: stdio,
                                 cgroupDirectories: try cgroup(of: name).directories, tty: tty)
    }

    /// `exec` without waiting, for health checks: the pid to reap (exit status = the
    /// command's); `output` takes its stdout and stderr.
    public func startExec(_ name: String, argv: [String], output: Int32, outputLimit: UInt64? = nil) throws -> pid_t {
        var (plan, pid) = try execPlan(name, argv: argv)
        if let limit = outputLimit {
            // The output is a host file: no more than this of it (and of any file the
            // command writes); beyond, SIGXFSZ ends the command.
            plan.rlimits.removeAll { $0.name == "fsize" }
            plan.rlimits.append(ResourceLimit(Int32(RLIMIT_FSIZE.rawValue), "fsize", soft: limit, hard: limit))
        }
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        if null < 0 { throw SystemError("open /dev/null") }
        defer { close(null) }
        return try Launcher.startExec(plan, jailPid: pid, namespaces: plan.namespaces,
                                      stdio: .init(stdin: null, stdout: output, stderr: output),
                                      cgroupDirectories: try cgroup(of: name).directories)
    }

    /// The jail's own launch plan with argv for its command and no mounts (they exist).
    func execPlan(_ name: String, argv: [String]) throws -> (LaunchPlan, Int32) {
        guard let record = try state.jail(name), isAlive(record) else {
            throw JailError(.notFound, "jail \(name) is not running")
        }
        let set = try loadSpecs()
        var spec = try jailSpec(name, in: set)
        guard let first = argv.first else { throw JailError(.invalidSpec, "exec: no command given") }
        let imagePath = root.store + "/" + record.imageHash
        let path = first.contains("/") ? first : try findInPath(first, imageRoot: imagePath)
        spec.command = [path] + argv.dropFirst()
        let prepared = try prepare(spec, set: set, imageOverride: (record.imageHash, imagePath))
        var plan = try launchPlan(spec, prepared: prepared, makeDirectories: false)
        plan.mounts = []
        plan.newSession = false
        return (plan, record.pid)
    }

    func findInPath(_ command: String, imageRoot: String) throws -> String {
        for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
            if ImageFS.isExecutable(dir + "/" + command, imageRoot: imageRoot) { return dir + "/" + command }
        }
        throw JailError(.notFound, "\(command): not found in the jail's PATH")
    }

    // MARK: planning

    struct Prepared {
        var image: (hash: String, path: String)
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
        var home: String
        var volumes: [PlannedVolume]
        var missingTargets: [(String, Bool)]
        /// Volume sources `up` makes, with their owner as the jail sees it.
        var creations: [VolumeCreation] = []
        /// The jail's own passwd and group (image + `[[users]]`); nil: the image's serve.
        var identity: IdentityFiles?
        /// Keeps gc off the image version until the jail's record names it.
        var pin: ImagePin?
        /// Writable volume sources of every jail (VolumeSources).
        var writableRoots: [String] = []
    }

    /// The image version of a jail (built when missing); `pin`: pinned for a launch, under
    /// the store lock, so a gc runs either before the resolution or after the pin.
    func resolveImage(_ spec: JailSpec, set: SpecSet, pin: Bool) throws -> ((hash: String, path: String), ImagePin?) {
        let lock = try StoreLock(store: root.store, .shared)
        defer { lock.release() }
        let image: (hash: String, path: String)
        if let (rec, path) = try images.path(of: spec.image) {
            image = (rec.hash, path)
        } else {
            // The build takes the lock shared too: both are granted.
            let report = try build(spec.image, set: set)
            image = (report.record.hash, report.path)
        }
        guard pin else { return (image, nil) }
        let own = ImagePin.own(jail: spec.name, hash: image.hash)
        try state.save(own)
        return (image, own)
    }

    /// A pin that is left behind (its row could not be deleted) holds nothing once this
    /// process ends: gc checks its pid and start time.
    func releasePin(_ pin: ImagePin) {
        do { try state.delete(pin) } catch { logger.warning("image pin of jail \(pin.jail): \(error) (harmless: gc drops it when this process ends)") }
    }

    /// The specs of every jail defined and of every template instance on record: what
    /// may hold a writable volume.
    func knownJails(_ set: SpecSet) throws -> [JailSpec] {
        var specs = Array(set.jails.values)
        let instances = try state.jails().map(\.name).filter { set.jails[$0] == nil }
        for name in instances {
            do { specs.append(try jailSpec(name, in: set)) } catch {
                logger.info("jail \(name): no spec to read its volumes from (\(error))")
            }
        }
        return specs
    }

    struct VolumeCreation {
        var source: String
        var uid: UInt32
        var gid: UInt32
        var mode: UInt32
        /// Seen through an idmapped mount: its host ids are the jail's own.
        var idmapped = false
    }

    /// Everything `up` must know before it makes anything: the image (built if
    /// missing), ids, command and volumes checked. Errors here change nothing.
    /// `pinImage`: `up` and `run`, which launch the version (see `ImagePin`).
    func prepare(_ spec: JailSpec, set: SpecSet, imageOverride: (String, String)? = nil, skipVolumes: Bool = false,
                 pinImage: Bool = false) throws -> Prepared {
        let image: (hash: String, path: String)
        var pin: ImagePin?
        if let o = imageOverride {
            image = o
        } else {
            (image, pin) = try resolveImage(spec, set: set, pin: pinImage)
        }
        // Released by the caller once the jail's record names the version; here when
        // the jail cannot start.
        var pinned = pin
        defer { if let p = pinned { releasePin(p) } }
        let ids = try jailIdentity(spec, imageRoot: image.path)
        var userName: String?, uid: UInt32?, groupName: String?, gid: UInt32?
        switch spec.user {
        case .name(let n): userName = n
        case .id(let i): uid = i
        }
        switch spec.group {
        case .name(let n)?: groupName = n
        case .id(let i)?: gid = i
        case nil: break
        }
        guard let resolved = ids.resolve(user: userName, uid: uid, group: groupName, gid: gid) else {
            throw JailError(.invalidSpec, "jail \(spec.name): unknown user \(spec.user)\(spec.group.map { " or group \($0)" } ?? "") in image \(spec.image)")
        }
        guard let command = spec.command.first, ImageFS.isExecutable(command, imageRoot: image.path) else {
            throw JailError(.invalidSpec, "jail \(spec.name): command \(spec.command.first ?? "") is not an executable file in image \(spec.image)")
        }
        var volumes: [PlannedVolume] = []
        var missing: [(String, Bool)] = []
        var creations: [VolumeCreation] = []
        let generated = (generatedFiles(spec) + identityFiles(spec, imageRoot: image.path)).filter { g in !spec.volumes.contains { $0.target == g.target } }
        for g in generated {
            // The image may hold its own (a symlink, a directory): then it has the say.
            switch ImageFS.lookup(g.target, imageRoot: image.path) {
            case .file: volumes.append(PlannedVolume(source: g.source, target: g.target, readonly: true, isDirectory: false))
            case .absent:
                volumes.append(PlannedVolume(source: g.source, target: g.target, readonly: true, isDirectory: false))
                missing.append((g.target, false))
            default: logger.info("jail \(spec.name): image \(spec.image) has its own \(g.target); not replacing it")
            }
        }
        for v in spec.volumes where !skipVolumes {
            var st = stat()
            let isDir: Bool
            if stat(v.source, &st) == 0 {
                isDir = (st.st_mode & S_IFMT) == S_IFDIR
            } else if errno == ENOENT && v.create {
                isDir = true
                creations.append(try volumeCreation(v, spec: spec, ids: ids, jailUser: resolved))
            } else {
                throw JailError(.invalidSpec, "jail \(spec.name): volume source \(v.source): \(strerrorString(errno))"
                                + (errno == ENOENT ? " (create = true makes it)" : ""))
            }
            let volume = PlannedVolume(source: v.source, target: v.target, readonly: v.readonly, isDirectory: isDir, idmap: v.idmap)
            if MountPlanner.tmpfsMounts.contains(where: { v.target.hasPrefix($0 + "/") }) {
                volumes.append(volume)
                continue
            }
            switch ImageFS.lookup(v.target, imageRoot: image.path) {
            case .directory where isDir, .file where !isDir: break
            case .absent: missing.append((v.target, isDir))
            case .symlink(let at):
                throw JailError(.invalidSpec, "jail \(spec.name): volume target \(v.target): \(at) is a symlink in image \(spec.image)")
            default:
                throw JailError(.invalidSpec, "jail \(spec.name): volume target \(v.target) is a \(isDir ? "file" : "directory") in image \(spec.image), source \(v.source) is not")
            }
            volumes.append(volume)
        }
        var prepared = Prepared(image: image, uid: resolved.uid, gid: resolved.gid, groups: resolved.groups, home: resolved.home,
                                volumes: volumes, missingTargets: missing, creations: creations)
        if !spec.users.isEmpty { prepared.identity = ids }
        prepared.pin = pin
        // Only for a launch with volumes of its own (exec and health checks mount nothing):
        // it reads every jail's spec and resolves their writable volumes.
        if pinImage && !skipVolumes && !spec.volumes.isEmpty {
            prepared.writableRoots = VolumeSources.writableRoots(of: try knownJails(set) + [spec])
        }
        pinned = nil
        return prepared
    }

    /// Files jailctl writes per jail and mounts read-only over the image's: a private
    /// jail's /etc/hosts (its own name and address, its links' names) and
    /// /etc/resolv.conf. `up` writes them (`writeGeneratedFiles`) before the jail mounts them.
    func generatedFiles(_ spec: JailSpec) -> [(source: String, target: String)] {
        guard spec.network.mode == .private else { return [] }
        let run = root.jailRun(spec.name)
        return [(run + "/hosts", "/etc/hosts"), (run + "/resolv.conf", "/etc/resolv.conf")]
    }

    /// `address`: the jail's own, once leased (nil: before the lease, a placeholder the
    /// mount can bind to; the real text follows before the jail runs).
    func writeGeneratedFiles(_ spec: JailSpec, address: String?, address6: String? = nil) throws {
        for (source, target) in generatedFiles(spec) {
            let text: String
            switch target {
            case "/etc/hosts":
                var lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
                if let address { lines.append("\(address)\t\(spec.hostname)") }
                if let address6 { lines.append("\(address6)\t\(spec.hostname)") }
                for peer in Set(spec.network.links.map(\.jail)).sorted() {
                    if let lease = try network.ipam.existing(jail: peer) { lines.append("\(lease.jailAddress)\t\(peer)") }
                    // Only a peer that is itself on IPv6 now: a lease of an old pool6 would
                    // name an address nothing answers on.
                    if address6 != nil, let lease6 = try IPAM6.existing(jail: peer, store: state),
                       network.ipam6?.pool.contains(lease6.jailAddress) == true
                    {
                        lines.append("\(lease6.jailAddress)\t\(peer)")
                    }
                }
                text = lines.joined(separator: "\n") + "\n"
            default:
                text = Self.resolvConf(dns: host.dns, hostResolvConf: (try? FS.readText("/etc/resolv.conf")) ?? "",
                                       ipv6: address6 != nil)
            }
            // In place, not renamed over: once mounted, the mount holds the inode.
            try FS.writeInPlace(source, text, mode: 0o644)
        }
    }

    /// jailctl.toml's servers, else the host's own that a jail can reach (not loopback:
    /// the host's 127.0.0.53 is not the jail's). `ipv6`: the jail has an IPv6 address, so
    /// the host's global and unique local IPv6 servers count too (not ::1, not link-local,
    /// which would need the host's interface).
    static func resolvConf(dns: [IPv4Address], hostResolvConf: String, ipv6: Bool = false) -> String {
        var servers = dns.map(\.description)
        if servers.isEmpty {
            for line in hostResolvConf.split(separator: "\n") {
                let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard f.count >= 2, f[0] == "nameserver" else { continue }
                if let a = IPv4Address(String(f[1])), a.value >> 24 != 127 { servers.append(a.description) }
                if ipv6, let a = IPv6Address(String(f[1])), a != .loopback, !a.isLinkLocal, !a.isIPv4Mapped { servers.append(a.description) }
            }
        }
        if servers.isEmpty { return "# jailctl: no name server a jail can reach; set [network] dns in jailctl.toml\n" }
        return servers.prefix(3).map { "nameserver \($0)" }.joined(separator: "\n") + "\n"
    }

    /// The jail's /dev/log on the host: the monitor of a detached jail binds it and
    /// relays what arrives into the jail's log; nil when the path is too long for a
    /// socket address (the jail then has no syslog).
    func syslogSocket(_ jail: String) -> String? {
        let path = root.jailRun(jail) + "/log.sock"
        return path.utf8.count < 108 ? path : nil
    }

    /// The owner of a volume `up` makes: as named, else the jail's own user and group.
    func volumeCreation(_ v: VolumeSpec, spec: JailSpec, ids: IdentityFiles,
                        jailUser: (uid: UInt32, gid: UInt32, groups: [UInt32], home: String)) throws -> VolumeCreation {
        var uid = jailUser.uid, gid = jailUser.gid
        if let owner = v.owner {
            let name: String? = if case .name(let n) = owner { n } else { nil }
            let id: UInt32? = if case .id(let i) = owner { i } else { nil }
            guard let u = ids.resolve(user: name, uid: id, group: nil, gid: nil) else {
                throw JailError(.invalidSpec, "jail \(spec.name): volume \(v.target): unknown owner \(owner) in image \(spec.image)")
            }
            (uid, gid) = (u.uid, u.gid)
        }
        if let group = v.group {
            switch group {
            case .id(let g): gid = g
            case .name(let n):
                guard let g = ids.groups.first(where: { $0.name == n }) else {
                    throw JailError(.invalidSpec, "jail \(spec.name): volume \(v.target): unknown group \(n) in image \(spec.image)")
                }
                gid = g.gid
            }
        }
        return VolumeCreation(source: v.source, uid: uid, gid: gid, mode: v.mode, idmapped: v.idmap)
    }

    /// Makes the missing volume sources of `creations` (parents root-owned 0755, the
    /// source itself owned as planned, through the jail's id map); `undo` removes what
    /// this call made, so a failed `up` leaves the host as it found it.
    func makeVolumes(_ creations: [VolumeCreation], idMap: (base: UInt32, size: UInt32)?, undo: inout Rollback) throws {
        for c in creations {
            if let m = idMap, c.uid >= m.size || c.gid >= m.size {
                throw JailError(.invalidSpec, "volume \(c.source): owner \(c.uid):\(c.gid) is outside the jail's user namespace (0-\(m.size - 1))")
            }
            // Walked by directory fds: what this call makes is owned and moded through
            // its own fd (never by path), and the new directory itself is opened without
            // following a link, so nothing swapped in meanwhile (by a jail that can write
            // the parent) redirects a chown or chmod onto a host file.
            let parts = c.source.split(separator: "/").map(String.init)
            var path = ""
            var dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir < 0 { throw SystemError("open /") }
            defer { close(dir) }
            var leafMade = false
            for (i, part) in parts.enumerated() {
                path += "/" + part
                let last = i == parts.count - 1
                var created = false
                if mkdirat(dir, part, last ? 0o700 : 0o755) == 0 {
                    created = true
                    // Registered at once: a failure further down still takes it back
                    // (steps run newest first, so the deepest goes first).
                    let made = path
                    undo.add("remove the volume directory \(made)") {
                        if rmdir(made) != 0 && errno != ENOENT { throw SystemError("rmdir \(made)") }
                    }
                } else if errno != EEXIST {
                    throw SystemError("mkdir \(path)")
                }
                // Existing parents may be links of the host's layout; what we made may not.
                let next = openat(dir, part, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (created ? O_NOFOLLOW : 0))
                if next < 0 { throw SystemError("open \(path)\(created ? " (replaced while being made?)" : "")") }
                close(dir)
                dir = next
                if last { leafMade = created }
            }
            // Another `up` (or the sysadmin) may have made it meanwhile: theirs, untouched.
            guard leafMade else { continue }
            let base = c.idmapped ? 0 : idMap?.base ?? 0
            let (uid, gid) = (c.uid + base, c.gid + base)
            try check("chown \(c.source)", fchown(dir, uid, gid))
            try check("chmod \(c.source)", fchmod(dir, mode_t(c.mode)))
        }
    }

    /// The complete launch plan of a jail (also what `inspect --dry-run` prints).
    /// `makeDirectories`: create what the plan refers to under the run directory (the
    /// writable layer, missing mount points) and lease a uid range; `up` and `run` do,
    /// a dry run and `exec` (into a jail that has them) do not.
    func launchPlan(_ spec: JailSpec, prepared p: Prepared, makeDirectories: Bool) throws -> LaunchPlan {
        let iso = spec.isolation
        var options = MountPlanner.Options()
        options.tmpSize = String(iso.limits.tmpfsSize)
        options.tmpExec = iso.filesystem.tmpExec
        options.sys = iso.filesystem.sys
        options.devTemplate = makeDirectories ? self.root.prepareDevTemplate() : self.root.existingDevTemplate()
        options.syslog = syslogSocket(spec.name)
        var root = p.image.path
        if !p.missingTargets.isEmpty || !iso.filesystem.readonlyRoot {
            root = self.root.jailRun(spec.name) + "/root"
            if makeDirectories { try FS.mkdirs(root, mode: 0o755) }
        }
        var idMap: (base: UInt32, size: UInt32)?
        if iso.userns {
            // A dry run shows the jail's lease, or where the first one would start.
            idMap = makeDirectories ? try state.idRange(for: spec.name)
                : try state.existingIdRange(for: spec.name) ?? (StateStore.idRangeStart, StateStore.idRangeSize)
        }
        if !iso.filesystem.readonlyRoot {
            // Writes land in a per-jail upper layer under the run directory; the image
            // stays untouched and shared. They are gone at `down`.
            let run = self.root.jailRun(spec.name)
            if makeDirectories {
                try FS.mkdirs(run + "/upper", mode: 0o755)
                try FS.mkdirs(run + "/work", mode: 0o700)
            }
            if makeDirectories, let m = idMap {
                // The jail's root must own its upper layer to write into it.
                for d in ["/upper", "/work"] { try check("chown \(run + d)", chown(run + d, m.base, m.base)) }
            }
            options.writableLayer = (run + "/upper", run + "/work")
        }
        if !p.missingTargets.isEmpty {
            // Mount points the image lacks live in a small per-jail layer under the run
            // directory, laid over the image by overlayfs (read-only, lower layers only).
            let run = self.root.jailRun(spec.name)
            let layer = run + "/mountpoints"
            for (target, isDir) in p.missingTargets where makeDirectories {
                if isDir {
                    try FS.mkdirs(layer + target)
                } else {
                    try FS.mkdirs(layer + String(target[..<(target.lastIndex(of: "/") ?? target.startIndex)]))
                    try FS.writeAtomically(layer + target, "")
                }
            }
            options.mountpointLayer = layer
        }
        var env: [String: String] = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                     "HOME": p.home, "TERM": "xterm"]
        for (k, v) in spec.env { env[k] = v }
        var plan = LaunchPlan(jail: spec.name, root: root, path: spec.command[0], argv: spec.command,
                              environment: env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        plan.mounts = MountPlanner.plan(root: root, image: p.image.path, volumes: p.volumes, options: options)
        plan.writableVolumeRoots = p.writableRoots
        plan.hostname = spec.hostname
        plan.uid = p.uid
        plan.gid = p.gid
        plan.groups = p.groups
        plan.workdir = spec.workdir
        plan.rlimits = Self.rlimits(iso.limits)
        plan.keepCapabilities = iso.capabilities.compactMap { Capabilities.number(of: $0) }
        if let profile = try Self.seccompProfile(spec) {
            plan.seccompFilter = try SeccompCompiler.compile(profile)
        }
        if let m = idMap {
            plan.namespaces.insert(.user)
            plan.idMap = m
        }
        return plan
    }

    /// The jail's seccomp profile; nil for "unconfined".
    public static func seccompProfile(_ spec: JailSpec) throws -> SeccompProfile? {
        do {
            let s = spec.isolation.seccomp
            return try SeccompProfile.forJail(profile: s.profile.rawValue, allow: s.allow, deny: s.deny)
        } catch {
            throw JailError(.invalidSpec, "jail \(spec.name): \(error)")
        }
    }

    /// Core dumps off (they would land in the jail's writable places with the memory of
    /// the service), open files and, where asked, processes and file size bounded.
    static func rlimits(_ l: LimitsSpec) -> [ResourceLimit] {
        var r = [ResourceLimit(Int32(RLIMIT_CORE.rawValue), "core", soft: 0, hard: 0),
                 ResourceLimit(Int32(RLIMIT_NOFILE.rawValue), "nofile", soft: l.nofile, hard: l.nofile)]
        if let n = l.nproc { r.append(ResourceLimit(6 /* RLIMIT_NPROC, not exported by Glibc */, "nproc", soft: n, hard: n)) }
        if let f = l.fsize { r.append(ResourceLimit(Int32(RLIMIT_FSIZE.rawValue), "fsize", soft: f, hard: f)) }
        return r
    }

    /// The plan `up` would carry out, without making anything (for `--dry-run`).
    public func dryRun(_ name: String) throws -> LaunchPlan {
        let set = try loadSpecs()
        let spec = try jailSpec(name, in: set)
        guard let (rec, path) = try images.path(of: spec.image) else {
            throw JailError(.notFound, "image \(spec.image) is not built yet (jailctl build \(spec.image))")
        }
        let p = try prepare(spec, set: set, imageOverride: (rec.hash, path))
        return try launchPlan(spec, prepared: p, makeDirectories: false)
    }

    // MARK: stopping

    func stop(_ r: JailRecord, signal: Int32, grace: Double) throws {
        let fd = jl_pidfd_open(r.pid)
        if fd < 0 {
            if -fd == ESRCH { return }
            throw SystemError("pidfd_open \(r.pid)", errno: -fd)
        }
        defer { close(fd) }
        // The pid might have been reused between the check and pidfd_open: the pidfd now
        // pins a process, so check its start time once more before signalling it.
        guard isAlive(r) else { return }
        _ = jl_pidfd_send_signal(fd, signal)
        if waitForExit(pidfd: fd, seconds: grace) { return }
        logger.info("jail \(r.name) did not stop within \(grace)s of signal \(signal); killing it")
        _ = jl_pidfd_send_signal(fd, SIGKILL)
        _ = waitForExit(pidfd: fd, seconds: 10)
    }

    func kill(pid: Int32, startTime: UInt64, signal: Int32) throws {
        let fd = jl_pidfd_open(pid)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard jl_proc_start_time(pid) == startTime else { return }
        _ = jl_pidfd_send_signal(fd, signal)
        _ = waitForExit(pidfd: fd, seconds: 5)
    }

    /// A pidfd becomes readable when its process exits: no polling.
    func waitForExit(pidfd: Int32, seconds: Double) -> Bool {
        var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        let deadline = monotonic() + seconds
        while true {
            let left = Int32(max(0, (deadline - monotonic()) * 1000))
            let rc = poll(&p, 1, left)
            if rc > 0 { return true }
            if rc == 0 { return false }
            if errno != EINTR { return false }
        }
    }

    struct ExitFile {
        var status: Int32
        var endedAt: Double
    }

    /// The monitor writes "exit" within moments of the jail's end; wait that long.
    func waitForExitFile(_ name: String, seconds: Double) -> ExitFile? {
        let path = root.jailRun(name) + "/exit"
        let deadline = monotonic() + seconds
        var delay: UInt32 = 500
        while true {
            if let text = try? FS.readText(path) {
                var status: Int32?
                var ended: Double = wallClock()
                for line in text.split(separator: "\n") {
                    let f = line.split(separator: " ")
                    guard f.count == 2 else { continue }
                    if f[0] == "status" { status = Int32(f[1]) }
                    if f[0] == "ended_ms", let ms = Double(f[1]) { ended = ms / 1000 }
                }
                if let status { return ExitFile(status: status, endedAt: ended) }
            }
            if monotonic() >= deadline { return nil }
            usleep(delay)
            delay = min(delay * 2, 20000)
        }
    }
}

/// Undo steps of a half-done operation, run in reverse unless committed. A failing
/// undo step is logged and the rest still run.
struct Rollback {
    let logger: Logger
    private var steps: [(String, () throws -> Void)] = []
    private var committed = false

    init(logger: Logger) { self.logger = logger }

    mutating func add(_ what: String, _ step: @escaping () throws -> Void) { steps.append((what, step)) }
    mutating func commit() { committed = true }

    mutating func run() {
        guard !committed else { return }
        for (what, step) in steps.reversed() {
            do { try step() } catch { logger.error("rollback: \(what) failed: \(error)") }
        }
        steps.removeAll()
    }
}

/// An exclusive flock on locks/<jail>.lock: one operation per jail at a time.
struct JailLock {
    let fd: Int32

    init(root: StateRoot, jail: String) throws {
        let path = root.lockDir + "/" + jail + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw SystemError("open \(path)") }
        while flock(fd, LOCK_EX) < 0 {
            if errno != EINTR {
                let e = errno
                close(fd)
                throw SystemError("flock \(path)", errno: e)
            }
        }
    }

    func release() { close(fd) }
}
