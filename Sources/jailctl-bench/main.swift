// Benchmarks driven in-process from JailKit, for scripts/bench. Not a test: it prints
// numbers, scripts/bench puts them side by side with their peers.
//   jailctl-bench launch ROOT SPECS JAIL RUNS [CFLOOR]   median ms of spawn → exit of
//       the jail, full hardening and skeleton (and variants), and of the C floor program
//       CFLOOR taking turns with them: one line each, "MS NAME"
//   jailctl-bench closure < FILES               ms for the ELF closure of each file
import Glibc
import JailKit

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

func fail(_ message: String) -> Never {
    let bytes = Array("jailctl-bench: \(message)\n".utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// Milliseconds from spawn to the jail's exit, one launch.
func launchOnce(_ plan: LaunchPlan) throws -> Double {
    let t0 = monotonic()
    let child = try Launcher.spawn(plan, stdio: .inherit, statusDir: nil)
    var status: Int32 = 0
    while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
    let ms = (monotonic() - t0) * 1000
    if status != 0 { fail("jail exited with wait status \(status)") }
    return ms
}

/// The C floor (scripts/bench.d/cfloor.c) as a separate small process that launches
/// once per byte it reads and answers with the milliseconds (a double).
struct FloorServer {
    let pid: pid_t
    let toFloor: Int32
    let fromFloor: Int32

    init(cfloor: String, image: String) {
        var down: [Int32] = [0, 0], up: [Int32] = [0, 0]
        // Close-on-exec: the floor must hold no end but its own, or it never sees EOF
        // when the bench exits (and keeps the bench's output pipe open).
        guard pipe(&down) == 0, pipe(&up) == 0 else { fail("pipe: \(errno)") }
        for fd in down + up { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, down[0], 0)
        posix_spawn_file_actions_adddup2(&actions, up[1], 1)
        let words: [String] = [cfloor, image, "serve", "net"]
        let argv = words.map { strdup($0) } + [nil]
        var child: pid_t = 0
        let rc = posix_spawn(&child, cfloor, &actions, nil, argv, environ)
        for a in argv { free(a) }
        posix_spawn_file_actions_destroy(&actions)
        guard rc == 0 else { fail("spawn \(cfloor): \(rc)") }
        close(down[0])
        close(up[1])
        pid = child
        toFloor = down[1]
        fromFloor = up[0]
    }

    /// Ends the floor (EOF on its input) and reaps it.
    func stop() {
        close(toFloor)
        close(fromFloor)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    func launch() -> Double {
        var go: UInt8 = 1
        var ms: Double = -1
        guard write(toFloor, &go, 1) == 1,
              read(fromFloor, &ms, MemoryLayout<Double>.size) == MemoryLayout<Double>.size, ms >= 0
        else { fail("the C floor failed") }
        return ms
    }
}

/// Median milliseconds of each plan (and of the C floor, when given, first), launched in
/// turns, one of each per round, so that a load change on a shared machine hits every
/// side alike.
func measure(_ plans: [LaunchPlan], floor: FloorServer?, runs: Int) throws -> [Double] {
    var times = Array(repeating: [Double](), count: plans.count + 1)
    for _ in 0..<runs {
        if let floor { times[0].append(floor.launch()) }
        for (i, plan) in plans.enumerated() { times[i + 1].append(try launchOnce(plan)) }
    }
    return times.map { $0.isEmpty ? 0 : median($0) }
}

let args = CommandLine.arguments
guard args.count >= 2 else { fail("usage: launch ROOT SPECS JAIL RUNS | closure < FILES") }
switch args[1] {
case "launch":
    guard args.count == 6 || args.count == 7, let runs = Int(args[5]) else { fail("usage: launch ROOT SPECS JAIL RUNS [CFLOOR]") }
    do {
        // As `up` launches: with the state root's /dev template (made on first use).
        _ = StateRoot(path: args[2]).prepareDevTemplate()
        let m = try JailManager(root: StateRoot(path: args[2]), specsDirectory: args[3])
        let full = try m.dryRun(args[4])
        // The walking skeleton's launch (issue 3): the same namespaces, read-only image
        // root, /proc, /dev, /tmp and /run, but none of issue 5's hardening: no /proc
        // masks, capabilities kept, no no_new_privs, no seccomp filter, no rlimits.
        var skeleton = full
        skeleton.mounts = full.mounts.filter { !$0.target.hasPrefix(full.root + "/proc/") }
        skeleton.dropCapabilities = false
        skeleton.noNewPrivileges = false
        skeleton.seccompFilter = []
        skeleton.rlimits = []
        var plans = [("full hardening", full), ("skeleton (no hardening)", skeleton)]
        // Where the time goes: the same launch with parts of the hardening taken away.
        if getenv("JAILCTL_BENCH_VARIANTS") != nil {
            var noMasks = full
            noMasks.mounts = skeleton.mounts
            var noSeccomp = full
            noSeccomp.seccompFilter = []
            var noCaps = full
            noCaps.dropCapabilities = false
            var noDirMasks = full
            noDirMasks.mounts = full.mounts.filter { op in !MountPlanner.maskedDirectories.contains { full.root + $0 == op.target } }
            plans += [("without /proc masks", noMasks), ("without the /proc directory masks", noDirMasks),
                      ("without seccomp", noSeccomp), ("without dropping capabilities", noCaps)]
        }
        let floor = args.count == 7 ? FloorServer(cfloor: args[6], image: full.root) : nil
        let medians = try measure(plans.map(\.1), floor: floor, runs: runs)
        floor?.stop()
        if floor != nil { print(String(format: "%.3f ", medians[0]) + "C floor with net namespace") }
        for (i, (name, _)) in plans.enumerated() { print(String(format: "%.3f ", medians[i + 1]) + name) }
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
