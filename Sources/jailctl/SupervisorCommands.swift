import ArgumentParser
import Foundation
import Glibc
import JailKit
import Logging

struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Supervise jails: restart those that end, per their restart policy.",
        discussion: """
            Jails do not depend on the daemon: each runs under its own monitor process, so the
            daemon can be stopped, killed or upgraded while they run; when it starts again it
            picks up every jail from the state database and decides about those that ended in
            between. Under systemd use Type=notify and Delegate=yes (see scripts/jailctl.service).
            """)
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try guarded {
            let m = try global.manager()
            if let answer = Supervisor.ask(m.root, "ping") {
                throw JailError(.busy, "a supervisor already runs for \(m.root.path) (\(answer.trimmingCharacters(in: .whitespacesAndNewlines)))")
            }
            // A parent may have left signals blocked (a test runner's thread, a shell
            // script's trap): SIGTERM and SIGINT must end the daemon, never the jails.
            var none = sigset_t()
            sigemptyset(&none)
            sigprocmask(SIG_SETMASK, &none, nil)
            let s = Supervisor(manager: m, logger: Logger(label: "jailctl.daemon"))
            s.superviseBackups(executable: selfExecutable())
            try s.start()
            try s.run()
        }
    }
}

/// `restart` and `reset`: one loop over the named jails, with what to do to each.
protocol PerJailCommand: ParsableCommand {
    var global: GlobalOptions { get }
    var names: [String] { get }
    func act(_ m: JailManager, _ name: String) throws -> String
}

extension PerJailCommand {
    func run() throws {
        try guarded {
            let m = try global.manager()
            for name in names { print("\(name): " + (try act(m, name))) }
        }
    }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Stop and start jails again.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Every running jail whose image changed since it started (a package upgrade): rebuild what is stale, then restart exactly those.")
    var stale = false
    @Argument var names: [String] = []

    func validate() throws {
        if stale == !names.isEmpty { throw ValidationError("name jails or give --stale (not both)") }
    }

    func run() throws {
        try guarded {
            let m = try global.manager()
            var targets = names
            if stale {
                let set = try m.loadSpecs()
                targets = try m.staleJails(set: set)
                let images = Set(targets.compactMap { try? m.state.jail($0)?.image })
                for image in images.sorted() where (try m.imageChanges(image, set: set))?.isEmpty == false {
                    let r = try m.build(image, set: set)
                    print("\(image): rebuilt -> \(r.record.hash.prefix(12))")
                }
                if targets.isEmpty { print("no running jail has a stale image") }
            }
            for name in targets {
                _ = try m.down(name)
                print("\(name): restarted (pid \(try m.up(name).status.pid ?? 0))")
            }
        }
    }
}

/// An explicit `up` clears the crash loop and the restart count; `reset` says so.
struct Reset: PerJailCommand {
    static let configuration = CommandConfiguration(commandName: "reset", abstract: "Leave the crash-loop state and start the jail again.")
    @OptionGroup var global: GlobalOptions
    @Argument var names: [String]

    func act(_ m: JailManager, _ name: String) throws -> String {
        let r = try m.up(name)
        return "\(r.alreadyRunning ? "already running" : "running") (pid \(r.status.pid ?? 0))"
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Show what happened to jails: starts, exits, restarts, crash loops, OOM kills.")
    @OptionGroup var global: GlobalOptions
    @Flag var json = false
    @Flag(name: .shortAndLong, help: "Keep printing new events.")
    var follow = false
    @Option(name: [.customShort("n"), .long]) var lines = 50
    @Argument var name: String?

    func run() throws {
        try guarded {
            let m = try global.manager()
            var last: Int64 = 0
            repeat {
                let events = try m.state.events(jail: name, limit: follow && last > 0 ? 1000 : lines).filter { ($0.id ?? 0) > last }
                for e in events {
                    if json {
                        let enc = JSONEncoder()
                        enc.outputFormatting = [.sortedKeys]
                        print(String(decoding: try enc.encode(e), as: UTF8.self))
                    } else {
                        print("\(formatTime(e.time))  \(pad(e.jail, 14))\(pad(e.kind, 14))\(e.detail)")
                    }
                    last = max(last, e.id ?? 0)
                }
                if follow { usleep(250_000) }
            } while follow
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Memory, processes and CPU time of running jails.")
    @OptionGroup var global: GlobalOptions
    @Flag var json = false
    @Argument var name: String?

    struct Row: Codable {
        var name: String
        var memoryBytes: UInt64?
        var memoryPeakBytes: UInt64?
        var pids: Int?
        var cpuSeconds: Double?
        var oomKills: UInt64?
    }

    func run() throws {
        try guarded {
            let m = try global.manager()
            let running = try m.statuses().filter { $0.state == .running && (name == nil || $0.name == name) }
            let rows = try running.map { s -> Row in
                let st = try m.stats(of: s.name)
                return Row(name: s.name, memoryBytes: st.memoryCurrent, memoryPeakBytes: st.memoryPeak, pids: st.pidsCurrent,
                           cpuSeconds: st.cpuUsageMicros.map { Double($0) / 1e6 }, oomKills: st.oomKills)
            }
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(rows), as: UTF8.self))
                return
            }
            print(pad("JAIL", 16) + pad("MEMORY", 12) + pad("PEAK", 12) + pad("PIDS", 6) + pad("CPU s", 10) + "OOM")
            for r in rows {
                print(pad(r.name, 16) + pad(r.memoryBytes.map { "\($0 >> 20)M" } ?? "-", 12)
                      + pad(r.memoryPeakBytes.map { "\($0 >> 20)M" } ?? "-", 12) + pad(r.pids.map(String.init) ?? "-", 6)
                      + pad(r.cpuSeconds.map { String(format: "%.2f", $0) } ?? "-", 10) + (r.oomKills.map(String.init) ?? "-"))
            }
        }
    }
}

struct Network: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "The instance's nftables table.",
        subcommands: [Show.self, Reapply.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print the table rendered from the attached jails (what reapply would load).")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Only render; never touches nft (the default: show never applies).")
        var dryRun = false
        @Option(help: "Only the element change that `up` of this attached jail applied (`down` removes the same).")
        var jail: String?
        @Flag(help: "With --jail: the change as `down` applies it.")
        var down = false

        func run() throws {
            try guarded {
                let m = try global.manager()
                guard let jail else { return print(m.network.render(jails: try m.attachedJails()), terminator: "") }
                guard let entry = m.attachedJail(jail) else {
                    throw JailError(.notFound, "jail \(jail) is not attached to the network (not running, or not mode = \"private\")")
                }
                print(try m.firewallChange(down ? .delete : .add, jail: entry), terminator: "")
            }
        }
    }

    struct Reapply: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reapply", abstract: "Load the table again from the state (after another tool flushed it), and start a [::1] relay that is gone.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try guarded {
                let m = try global.manager()
                try m.applyFirewall()
                print("table jailctl_\(m.root.instance): \(try m.attachedJails().count) jails")
                for name in try m.ensureRelays() { print("jail \(name): [::1] relay started again") }
            }
        }
    }
}
