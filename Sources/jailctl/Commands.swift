import ArgumentParser
import Foundation
import Glibc
import JailKit
import Logging

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Check spec files; print every error as FILE:LINE:COLUMN.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Jail or image names, or spec files (default: everything).")
    var names: [String] = []

    func run() throws {
        let (set, diagnostics) = SpecLoader.load(directory: global.absolute(global.specs))
        let selected = diagnostics.filter { d in
            names.isEmpty || names.contains { n in d.file == n || d.file.hasSuffix("/" + n) || d.file.hasSuffix("/\(n).toml") }
        }
        for d in selected { print(d.description) }
        for n in names where !n.hasSuffix(".toml") && set.jails[n] == nil && set.images[n] == nil
            && !selected.contains(where: { $0.file.hasSuffix("/\(n).toml") })
        {
            print("\(n): error: no jail or image of that name")
            throw ExitCode(1)
        }
        if selected.contains(where: { $0.severity == .error }) { throw ExitCode(1) }
        print("ok: \(set.images.count) images, \(set.jails.count) jails" + (set.templates.isEmpty ? "" : ", \(set.templates.count) templates"))
    }
}

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build images into the image store (only those that are stale or not built).")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print every file of the image and why it is there, without building.")
    var explain = false
    @Flag(help: "List stale images and the sources that changed, without building; exit 1 if any is stale.")
    var check = false
    @Flag(help: "With --check: record an image-stale event for each stale image (the apt hook's way).")
    var record = false
    @Flag(help: "Rebuild even if the image is up to date, reading every source again.")
    var force = false
    @Argument(help: "Image names (default: all).")
    var images: [String] = []

    func run() throws {
        var stale = false
        try guarded {
            let m = try global.manager()
            // No jail starts here: the host's listening ports do not matter.
            let set = try m.loadSpecs(portWarnings: false)
            let names = images.isEmpty ? set.images.keys.sorted() : images
            for name in names {
                guard let spec = set.images[name] else { throw JailError(.notFound, "no image named \(name)") }
                let ids = JailManager.identities(of: name, in: set)
                if explain {
                    print(try ImageBuilder.host().plan(spec, users: ids.users, groups: ids.groups).explain(), terminator: "")
                    continue
                }
                // Up to date: built, and no source or parameter changed since.
                let parameters = ImageBuilder.parameters(users: ids.users, groups: ids.groups)
                var changes: [ChangedSource]?
                if try m.images.path(of: name) != nil { changes = try m.images.staleness(of: name, parameters: parameters) }
                if check {
                    if let changes, changes.isEmpty {
                        print("\(name): up to date")
                    } else {
                        stale = true
                        print("\(name): \(changes == nil ? "not built" : "stale")")
                        for c in changes ?? [] { print("  \(c)") }
                        if record, let changes {
                            // An alert like the daemon's: an event, and notify when chosen.
                            Notifier(state: m.state, command: m.host.notify, kinds: m.host.notifyEvents, logger: Logger(label: "jailctl"))
                                .alert(kind: "image-stale", jail: "image:\(name)",
                                       detail: changes.prefix(5).map(\.description).joined(separator: "; ")
                                           + (changes.count > 5 ? " (and \(changes.count - 5) more)" : ""))
                        }
                    }
                    continue
                }
                if !force, let changes, changes.isEmpty {
                    print("\(name): up to date")
                    continue
                }
                // --force reads every source again; otherwise unchanged ones are relinked.
                let r = try m.build(name, set: set, reuse: !force)
                print("\(name): \(r.record.files) files, \(r.record.bytes) bytes, \(String(format: "%.1f", r.seconds * 1000)) ms -> \(r.record.hash.prefix(12))")
            }
        }
        if stale { throw ExitCode(1) }
    }
}

struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List built images.")
    @OptionGroup var global: GlobalOptions
    @Flag var json = false

    func run() throws {
        try guarded {
            let m = try global.manager()
            let usage = try m.images.usage()
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(usage), as: UTF8.self))
                return
            }
            print(pad("IMAGE", 16) + pad("HASH", 14) + pad("FILES", 8) + pad("BYTES", 12) + pad("UNIQUE", 12) + "JAILS")
            for u in usage {
                print(pad(u.name, 16) + pad(String(u.hash.prefix(12)), 14) + pad("\(u.files)", 8) + pad("\(u.bytes)", 12)
                      + pad("\(u.uniqueBytes)", 12) + (u.jails.isEmpty ? "-" : u.jails.joined(separator: ",")))
            }
        }
    }
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Report what on this host would break or bypass jailctl's rules, and what to do; exit 1 on a problem.")
    @OptionGroup var global: GlobalOptions
    @Flag var json = false

    func run() throws {
        var problem = false
        try guarded {
            let m = try global.manager()
            let cgroups: String? = (try? m.cgroupDriver())?.summary
            let facts = JailKit.Doctor.gather(nft: m.network.nft, cgroups: cgroups)
            let found = JailKit.Doctor.findings(facts, pool: m.host.pool, pool6: m.host.pool6, ourTable: m.network.ruleset.table,
                                                interfacePrefix: m.network.ruleset.interfacePrefix)
            problem = found.contains { $0.severity == .problem }
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(found), as: UTF8.self))
                return
            }
            for f in found {
                print(pad(f.severity.rawValue, 9) + f.what)
                if !f.fix.isEmpty { print(pad("", 9) + "fix: " + f.fix) }
            }
        }
        if problem { throw ExitCode(1) }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Remove stored image versions no image and no running jail uses, and unlinked file objects.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Only say what would be removed.")
    var dryRun = false

    func run() throws {
        try guarded {
            let m = try global.manager()
            let r = try m.images.gc(dryRun: dryRun)
            for h in r.images { print("\(dryRun ? "would remove" : "removed") image version \(h.prefix(12))") }
            print("\(dryRun ? "would remove" : "removed") \(r.images.count) image version(s), \(r.objects) unlinked object(s), \(r.bytes) bytes")
        }
    }
}

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "up", abstract: "Start jails (building their images if needed).")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Every jail of the spec directory, each after the jails it names in `after`.")
    var all = false
    @Flag(help: "Rebuild a jail's image first when its sources changed (otherwise up warns and runs the built one).")
    var rebuild = false
    @Argument var names: [String] = []

    func validate() throws {
        if all == !names.isEmpty { throw ValidationError("name jails or give --all (not both)") }
    }

    func run() throws {
        try guarded {
            let m = try global.manager()
            let set = try m.loadSpecs()
            var order = try m.expandNames(names)
            if all {
                // Plain jails in `after` order, then every known instance of each template.
                order = JailManager.startOrder(set) + (try m.expandNames(set.templates.keys.sorted().map { $0 + "@*" }))
            }
            var checked: [String: [ChangedSource]?] = [:]
            for name in order {
                // A stale image (a package upgrade since it was built): say so, or rebuild.
                if let image = try m.definedSpec(name, in: set)?.image {
                    if checked[image] == nil { checked[image] = try m.imageChanges(image, set: set) }
                    if let changes = checked[image] ?? nil, !changes.isEmpty {
                        if rebuild {
                            let r = try m.build(image, set: set)
                            print("\(image): rebuilt -> \(r.record.hash.prefix(12))")
                            checked[image] = .some([])
                        } else {
                            printErr("jailctl: warning: \(name): image \(image) is stale (\(changes.count) source(s) changed, e.g. \(changes[0])); `jailctl up --rebuild \(name)` or `jailctl build \(image)` and `jailctl restart \(name)`")
                        }
                    }
                }
                let r = try m.up(name)
                if r.alreadyRunning {
                    print("\(name): already running (pid \(r.status.pid ?? 0))")
                } else {
                    print("\(name): running (pid \(r.status.pid ?? 0), image \(r.status.image))")
                }
            }
            // Jails run without a daemon, but nothing restarts or checks them then: say
            // so, and how to have one (the choice: say, not start one behind your back).
            if !order.isEmpty, Supervisor.ask(m.root, "ping") == nil {
                fflush(nil)  // after what was printed above, also when both go to one pipe
                printErr("jailctl: note: no jailctl daemon runs for \(m.root.path): these jails are not restarted or health-checked; start it with `systemctl start jailctl` (scripts/jailctl.service) or `jailctl daemon &`")
            }
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a jail in the foreground until it exits; exit with its status.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
        var status: Int32 = 0
        try guarded {
            status = try global.manager().runForeground(name)
        }
        throw ExitCode(waitStatusCode(status))
    }
}

func waitStatusCode(_ ws: Int32) -> Int32 { (ws & 0x7f) == 0 ? (ws >> 8) & 0xff : 128 + (ws & 0x7f) }

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "down", abstract: "Stop jails and remove what up made.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Seconds to wait after the stop signal (default: the jail's stop_timeout).")
    var timeout: Double?
    @Flag(help: "Every jail jailctl knows, in the reverse of the start order.")
    var all = false
    @Flag(help: "Also forget the jail: release its address and uid range, drop its record, events and logs (never its volumes).")
    var purge = false
    @Argument var names: [String] = []

    func validate() throws {
        if all == !names.isEmpty { throw ValidationError("name jails or give --all (not both)") }
    }

    func run() throws {
        try guarded {
            let m = try global.manager()
            var order = try m.expandNames(names)
            if all {
                // Jails without a spec any more come first: nothing can depend on them.
                let known = (try? m.loadSpecs()).map { JailManager.startOrder($0) } ?? []
                let recorded = try m.state.jails().map(\.name)
                order = recorded.filter { !known.contains($0) } + known.reversed().filter { recorded.contains($0) }
            }
            for name in order {
                if purge {
                    try m.purge(name)
                    print("\(name): purged (address, uid range, record, events and logs released)")
                    continue
                }
                let r = try m.down(name, timeout: timeout)
                print(r.wasRunning ? "\(name): stopped" : "\(name): not running")
            }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show jails, checked against the kernel.")
    @OptionGroup var global: GlobalOptions
    @Flag var json = false
    @Argument(help: "A jail, or every instance of a template: 'php-tenant@*'.")
    var name: String?

    func run() throws {
        try guarded {
            let m = try global.manager()
            var list = try m.statuses()
            if let name {
                let wanted = Set(try m.expandNames([name]))
                list = list.filter { wanted.contains($0.name) }
                if list.isEmpty { throw JailError(.notFound, "jail \(name) was never started") }
            }
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(list), as: UTF8.self))
                return
            }
            print(pad("JAIL", 16) + pad("STATE", 20) + pad("PID", 8) + pad("STARTED", 21) + "IMAGE")
            for s in list {
                let started = s.startedAt.map { formatTime($0) } ?? "-"
                print(pad(s.name, 16) + pad(s.summary, 20) + pad(s.pid.map(String.init) ?? "-", 8) + pad(started, 21)
                      + "\(s.image)@\(s.imageHash.prefix(12))" + (s.staleImage ? " (stale)" : ""))
            }
        }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command inside a running jail.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Give the command a terminal of the jail's own (interactive shells); never the caller's.")
    var tty = false
    @Argument var name: String
    @Argument(parsing: .captureForPassthrough) var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        var status: Int32 = 0
        try guarded {
            status = try global.manager().exec(name, argv: argv, tty: tty)
        }
        throw ExitCode(waitStatusCode(status))
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a jail's output.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Keep printing what the jail writes.")
    var follow = false
    @Option(name: [.customShort("n"), .long], help: "Only the last N lines.")
    var lines: Int?
    @Option(help: "Only lines since a time ago (30s, 10m, 2h, 1d) or a UTC time (2026-11-30T04:20); reads rotated files too.")
    var since: String?
    @Argument var name: String

    func run() throws {
        try guarded {
            let m = try global.manager()
            let path = m.root.jailLog(name)
            var fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw JailError(.notFound, "no log for jail \(name) (\(path))") }
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 65536)
            var all: [UInt8] = []
            while true {
                let n = read(fd, &buf, buf.count)
                if n <= 0 { break }
                all.append(contentsOf: buf[0..<n])
            }
            var text = String(decoding: all, as: UTF8.self)
            if let since {
                guard let stamp = LogQuery.sinceStamp(since, now: wallClock()) else {
                    throw JailError(.invalidSpec, "--since \(since): expected 30s, 10m, 2h, 1d or a UTC time like 2026-11-30T04:20")
                }
                // Older lines live in the rotated files; the open one was read above, so
                // a rotation meanwhile loses nothing that -f would not print.
                let older = LogQuery.rotatedText(m.root, jail: name)
                text = LogQuery.lines(older + text, since: stamp).joined(separator: "\n")
            }
            if let lines {
                text = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines + 1).joined(separator: "\n")
            }
            FileHandle.standardOutput.write(Data(text.utf8))
            // Rotated files still to read, in order, before the current one (opened at
            // once when a rotation is seen, so further renames cannot shift them).
            var pending: [Int32] = []
            // Woken by the log directory's changes (a write, a rotation), not by a timer:
            // a fast writer rotates the log more often than any polling would look.
            let notify = follow ? inotify_init1(Int32(IN_CLOEXEC)) : -1
            defer { if notify >= 0 { close(notify) } }
            if notify >= 0 { _ = inotify_add_watch(notify, m.root.logDir, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO)) }
            var events = [UInt8](repeating: 0, count: 4096)
            while follow {
                let n = read(fd, &buf, buf.count)
                if n > 0 {
                    FileHandle.standardOutput.write(Data(buf[0..<n]))
                    continue
                }
                if let next = pending.first {
                    pending.removeFirst()
                    close(fd)
                    fd = next
                    continue
                }
                // At the end of the file: if the monitor rotated it, go on with the files
                // that came after it (several rotations may have happened meanwhile), then
                // the current one.
                var now = stat(), open_ = stat()
                if stat(path, &now) == 0, fstat(fd, &open_) == 0, now.st_ino != open_.st_ino {
                    // The rotated files and the current one, opened together and checked
                    // against their names again: a rotation while opening them shifts
                    // every name by one, and then we look again.
                    var opened: [(fd: Int32, ino: UInt)] = []
                    for _ in 0..<10 {
                        for o in opened { close(o.fd) }
                        let files = LogQuery.files(m.root, jail: name)  // oldest first, current last
                        opened = files.compactMap { f -> (fd: Int32, ino: UInt)? in
                            let fd = open(f, O_RDONLY | O_CLOEXEC)
                            var st = stat()
                            guard fd >= 0 else { return nil }
                            guard fstat(fd, &st) == 0 else { close(fd); return nil }
                            return (fd, UInt(st.st_ino))
                        }
                        let again = LogQuery.files(m.root, jail: name).map { f -> UInt in
                            var st = stat()
                            return stat(f, &st) == 0 ? UInt(st.st_ino) : 0
                        }
                        if again == opened.map(\.ino) { break }
                    }
                    let ours = opened.firstIndex { $0.ino == UInt(open_.st_ino) }
                    if ours == nil {
                        printErr("jailctl: logs: the log rotated past what was read (log_keep too small to follow); going on with the newest")
                    }
                    let start = (ours ?? opened.count - 2) + 1
                    for (i, o) in opened.enumerated() where i < start { close(o.fd) }
                    pending = opened[start...].map(\.fd)
                    continue
                }
                if notify >= 0 {
                    var p = pollfd(fd: notify, events: Int16(POLLIN), revents: 0)
                    if poll(&p, 1, 1000) > 0 { _ = read(notify, &events, events.count) }
                } else {
                    usleep(200_000)
                }
            }
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show a jail's launch plan (mounts, ids, limits) without running it.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print the plan that up would carry out.")
    var dryRun = false
    @Flag(help: "Print the jail's seccomp profile, rule by rule.")
    var seccomp = false
    @Flag(help: "Print the cgroup writes of the jail's limits.")
    var cgroup = false
    @Argument var name: String

    func run() throws {
        try guarded {
            let m = try global.manager()
            if seccomp {
                let spec = try m.jailSpec(name, in: m.loadSpecs())
                guard let profile = try JailManager.seccompProfile(spec) else {
                    print("\(name): unconfined (no seccomp filter)")
                    return
                }
                print(SeccompCompiler.render(profile), terminator: "")
                return
            }
            if cgroup {
                let spec = try m.jailSpec(name, in: m.loadSpecs())
                print(try m.cgroupDriver().plan(jail: name, instance: m.root.instance,
                                               limits: JailManager.cgroupLimits(spec.isolation.limits)).render(), terminator: "")
                return
            }
            print(try m.dryRun(name).render(), terminator: "")
        }
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }

func formatTime(_ t: Double) -> String {
    var tt = time_t(t)
    var tmv = tm()
    localtime_r(&tt, &tmv)
    var buf = [CChar](repeating: 0, count: 32)
    strftime(&buf, buf.count, "%Y-%m-%d %H:%M:%S", &tmv)
    let end = buf.firstIndex(of: 0) ?? buf.count
    return String(decoding: buf[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
