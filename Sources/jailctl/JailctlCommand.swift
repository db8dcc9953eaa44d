import ArgumentParser
import Glibc
import JailKit
import Logging

/// Every command names itself in its configuration: without a name, the parser derives one
/// with String(describing:) of the type, which in this static binary scans every protocol
/// conformance record several times per command (about 6 ms of each command's start-up).
@main
struct Jailctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jailctl",
        abstract: "Run services and tenants of one Linux host in jails.",
        subcommands: [Validate.self, Build.self, Images.self, GC.self, Doctor.self, Up.self, Down.self, Restart.self, Reset.self, Status.self,
                      Stats.self, Exec.self, Logs.self, Events.self, Inspect.self, Run.self, Daemon.self, Network.self, Backup.self,
                      Tenant.self])
}

/// Options every command that touches state takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "State directory (env JAILCTL_ROOT).")
    var root: String = ProcessInfoLite.env("JAILCTL_ROOT") ?? StateRoot.defaultPath

    @Option(help: "Spec directory holding Images/ and Jails/ (env JAILCTL_SPECS).")
    var specs: String = ProcessInfoLite.env("JAILCTL_SPECS") ?? "/etc/jailctl"

    func manager() throws -> JailManager {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        return try JailManager(root: StateRoot(path: absolute(root)), specsDirectory: absolute(specs))
    }

    func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return p }
        let end = buf.firstIndex(of: 0) ?? buf.count
        return String(decoding: buf[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + p
    }
}

enum ProcessInfoLite {
    static func env(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }
}

/// Runs a command body and turns JailKit errors into a message and exit status 1.
func guarded(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as JailError {
        printErr("jailctl: \(e.message)")
        throw ExitCode(1)
    } catch let e as SystemError {
        printErr("jailctl: \(e)")
        throw ExitCode(1)
    }
}

func printErr(_ s: String) {
    var line = s
    if !line.hasSuffix("\n") { line += "\n" }
    let bytes = Array(line.utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
