// Benchmarks driven in-process from JailKit, for scripts/bench. Not a test: it prints
// numbers, scripts/bench puts them side by side with their peers.
//   jailctl-bench launch ROOT SPECS JAIL RUNS   median ms of spawn → exit of the jail
//   jailctl-bench closure < FILES               ms for the ELF closure of each file
import Glibc
import JailKit

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

func fail(_ message: String) -> Never {
    let bytes = Array("jailctl-bench: \(message)\n".utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// Median milliseconds from spawn to the jail's exit.
func measure(_ plan: LaunchPlan, runs: Int) throws -> Double {
    var times: [Double] = []
    for _ in 0..<runs {
        let t0 = monotonic()
        let child = try Launcher.spawn(plan, stdio: .inherit, statusDir: nil)
        var status: Int32 = 0
        while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
        times.append((monotonic() - t0) * 1000)
        if status != 0 { fail("jail exited with wait status \(status)") }
    }
    return median(times)
}

let args = CommandLine.arguments
guard args.count >= 2 else { fail("usage: launch ROOT SPECS JAIL RUNS | closure < FILES") }
switch args[1] {
case "launch":
    guard args.count == 6, let runs = Int(args[5]) else { fail("usage: launch ROOT SPECS JAIL RUNS") }
    do {
        let m = try JailManager(root: StateRoot(path: args[2]), specsDirectory: args[3])
        let full = try m.dryRun(args[4])
        print(String(format: "%.3f", try measure(full, runs: runs)))
        // Where the time goes: the same launch with parts of the hardening taken away.
        if getenv("JAILCTL_BENCH_VARIANTS") != nil {
            var noMasks = full
            noMasks.mounts = full.mounts.filter { !$0.target.contains("/proc/") }
            var minimal = full
            minimal.mounts = full.mounts.filter { $0.target == full.root || $0.target == full.root + "/proc" }
            var bare = minimal
            bare.dropCapabilities = false
            bare.noNewPrivileges = false
            bare.seccompFilter = []
            bare.rlimits = []
            for (name, plan) in [("without /proc masks", noMasks), ("bind root + /proc only", minimal),
                                 ("bind root + /proc, no caps/seccomp/rlimits", bare)]
            {
                print(String(format: "%.3f %@", try measure(plan, runs: runs), name))
            }
        }
    } catch {
        fail("\(error)")
    }
case "closure":
    var files: [String] = []
    while let line = readLine() { if !line.isEmpty { files.append(line) } }
    do {
        let t0 = monotonic()
        let closure = ELFClosure(config: try LinkerConfig())
        let r = try closure.closure(of: files)
        let ms = (monotonic() - t0) * 1000
        var libraries: Set<String> = []
        for (_, deps) in r.resolved { for (_, path) in deps { libraries.insert(path) } }
        let missing = r.missing.count
        print(String(format: "%.1f %d %d %d", ms, files.count, libraries.count, missing))
    } catch {
        fail("\(error)")
    }
default:
    fail("unknown mode \(args[1])")
}
