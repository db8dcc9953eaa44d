import ArgumentParser
import Foundation
import Glibc
import JailKit
import Logging

/// `jailctl backup ...`: the hosts of a backup jail, their state, and its periodic work.
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Manage an rsync-only backup jail (a jail with a [backup] table).",
        subcommands: [BackupAddHost.self, BackupRemoveHost.self, BackupListHosts.self, BackupStatus.self,
                      BackupCheck.self, BackupSnapshot.self])
}

struct BackupOptions: ParsableArguments {
    @OptionGroup var global: GlobalOptions
    @Option(help: "The backup jail (default: the only jail with a [backup] table).")
    var jail: String?

    func backup() throws -> BackupManager {
        try BackupManager.forJail(jail, manager: try global.manager())
    }
}

func isoTime(_ t: Double?) -> String {
    guard let t else { return "never" }
    var secs = time_t(t)
    var tm = tm()
    gmtime_r(&secs, &tm)
    var buf = [CChar](repeating: 0, count: 32)
    strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &tm)
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try enc.encode(value), as: UTF8.self))
}

struct BackupAddHost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-host",
        abstract: "Let a remote host push into its own directory with one key.",
        discussion: "The key may only run rsync into /backups/NAME/current (or read NAME's own files back).")
    @OptionGroup var options: BackupOptions
    @Argument(help: "The host's name: its directory (a-z, 0-9, '-').") var name: String
    @Option(help: "The host's public key file (e.g. id_ed25519.pub).") var key: String

    func run() throws {
        try guarded {
            let text: String
            do { text = try String(contentsOfFile: key, encoding: .utf8) } catch {
                throw JailError(.notFound, "cannot read the key file \(key): \(error.localizedDescription)")
            }
            let h = try options.backup().addHost(name, keyText: text)
            print("\(h.name): added, key \(h.fingerprint)")
        }
    }
}

struct BackupRemoveHost: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove-host",
                                                    abstract: "Revoke a host's key (its data stays unless --purge).")
    @OptionGroup var options: BackupOptions
    @Argument var name: String
    @Flag(help: "Also delete the host's current data and snapshots.") var purge = false

    func run() throws {
        try guarded {
            try options.backup().removeHost(name, purge: purge)
            print("\(name): removed\(purge ? ", data deleted" : ", data kept")")
        }
    }
}

struct BackupListHosts: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list-hosts", abstract: "List the hosts and their keys.")
    @OptionGroup var options: BackupOptions
    @Flag var json = false

    func run() throws {
        try guarded {
            let hosts = try options.backup().hosts()
            if json { return try printJSON(hosts) }
            print(pad("HOST", 20) + pad("ADDED", 22) + "KEY")
            for h in hosts { print(pad(h.name, 20) + pad(isoTime(h.addedAt), 22) + "\(h.key.type) \(h.fingerprint)") }
        }
    }
}

struct BackupStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Per host: last successful push, size, files, snapshots, disk use.")
    @OptionGroup var options: BackupOptions
    @Flag var json = false

    func run() throws {
        try guarded {
            let rows = try options.backup().status()
            if json { return try printJSON(rows) }
            print(pad("HOST", 16) + pad("LAST PUSH", 22) + pad("BYTES", 14) + pad("FILES", 9) + pad("SNAPSHOTS", 11)
                  + pad("DISK", 14) + "STATE")
            for r in rows {
                var state: [String] = []
                if r.stale { state.append("stale") }
                if r.overQuota { state.append("over quota") }
                if let x = r.lastPushExit, x != 0 { state.append("last exit \(x)") }
                print(pad(r.host, 16) + pad(isoTime(r.lastSuccess), 22) + pad("\(r.bytes)", 14) + pad("\(r.files)", 9)
                      + pad("\(r.snapshots)", 11) + pad("\(r.diskBytes)", 14) + (state.isEmpty ? "ok" : state.joined(separator: ", ")))
            }
        }
    }
}

struct BackupCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run the periodic work once: push summaries, snapshots, retention, quota, freshness.",
        discussion: "The supervisor does this by itself; run it from cron where no supervisor runs.")
    @OptionGroup var options: BackupOptions

    func run() throws {
        try guarded {
            let b = try options.backup()
            let notifier = Notifier(state: b.manager.state, command: b.manager.host.notify, kinds: b.manager.host.notifyEvents, logger: Logger(label: "jailctl.backup"))
            b.notifier = notifier
            defer { notifier.wait() }
            if try !b.periodic() { print("backup \(b.jail): another run (the daemon's) holds the area's lock; it does this work now") }
        }
    }
}

struct BackupSnapshot: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot", abstract: "Take a snapshot of a host's current data now.")
    @OptionGroup var options: BackupOptions
    @Argument var name: String

    func run() throws {
        try guarded {
            let b = try options.backup()
            guard try b.hosts().contains(where: { $0.name == name }) else { throw JailError(.notFound, "no host named \(name)") }
            print("\(name): snapshot \(try b.snapshot(name))")
        }
    }
}

/// This executable's path, for the supervisor's `backup check` children.
func selfExecutable() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { return "/usr/local/bin/jailctl" }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
