#if canImport(Glibc)
import Glibc
#endif

/// The resource limits of one jail, independent of the cgroup version that enforces them.
/// nil means "no limit" (the kernel's default, "max").
public struct CgroupLimits: Sendable, Equatable {
    /// Bytes of memory (v2 memory.max, v1 memory.limit_in_bytes).
    public var memory: UInt64?
    /// Bytes of swap the jail may use *in addition to* `memory` (v2 memory.swap.max).
    /// v1 has no swap-only knob, only memory+swap (memory.memsw.limit_in_bytes), so there
    /// it becomes memory + memorySwap and needs `memory` to be set.
    public var memorySwap: UInt64?
    /// Maximum number of tasks (processes and threads) in the jail.
    public var pids: Int?
    /// CPUs of bandwidth: 0.5 is 50 ms of CPU time per 100 ms period.
    public var cpu: Double?
    /// Relative weight under contention, 1...10000, 100 being the default (v2 cpu.weight;
    /// v1 cpu.shares by the linear mapping 100 ↔ 1024).
    public var cpuWeight: Int?

    public init(memory: UInt64? = nil, memorySwap: UInt64? = nil, pids: Int? = nil, cpu: Double? = nil, cpuWeight: Int? = nil) {
        self.memory = memory
        self.memorySwap = memorySwap
        self.pids = pids
        self.cpu = cpu
        self.cpuWeight = cpuWeight
    }

    public static let none = CgroupLimits()

    /// The CFS period every quota is expressed in (the kernel's default).
    static let cpuPeriod: UInt64 = 100_000

    /// Controllers these limits need, by their kernel names, sorted.
    var controllers: [String] {
        var c: Set<String> = []
        if memory != nil || memorySwap != nil { c.insert("memory") }
        if pids != nil { c.insert("pids") }
        if cpu != nil || cpuWeight != nil { c.insert("cpu") }
        return c.sorted()
    }

    /// Rejects values the kernel would reject later, with the field named, so a bad
    /// spec fails at planning and not halfway through creating directories.
    func validate() throws {
        if let m = memory, m == 0 { throw JailError(.invalidSpec, "cgroup limits: memory must be more than 0 bytes") }
        if let p = pids, p < 1 { throw JailError(.invalidSpec, "cgroup limits: pids must be at least 1, not \(p)") }
        if let c = cpu, !(c > 0 && c.isFinite && c <= 1_000_000) {
            throw JailError(.invalidSpec, "cgroup limits: cpu must be a positive number of CPUs, not \(c)")
        }
        if let w = cpuWeight, !(1...10000).contains(w) {
            throw JailError(.invalidSpec, "cgroup limits: cpuWeight must be within 1...10000, not \(w)")
        }
    }

    /// CFS quota in µs for `cpu` CPUs per `cpuPeriod`; at least 1 ms, the kernel's minimum.
    static func quota(cpus: Double) -> UInt64 {
        let q = (cpus * Double(cpuPeriod)).rounded()
        return max(1000, UInt64(q))
    }

    /// v2 weight → v1 shares: 100 (default weight) ↔ 1024 (default shares), linear,
    /// clamped to the kernel's 2...262144.
    static func shares(weight: Int) -> UInt64 {
        let s = UInt64(weight) * 1024 / 100
        return min(262_144, max(2, s))
    }
}

/// One step of creating a jail's cgroup: a directory or a control-file write. A plan is a
/// list of these, computed without touching the system, printed by `description`.
public struct CgroupWrite: Sendable, Equatable, CustomStringConvertible {
    public enum Action: Sendable, Equatable {
        case mkdir
        case write(String)
    }
    public var path: String
    public var action: Action

    public static func mkdir(_ path: String) -> CgroupWrite { CgroupWrite(path: path, action: .mkdir) }
    public static func write(_ path: String, _ value: String) -> CgroupWrite { CgroupWrite(path: path, action: .write(value)) }

    public var description: String {
        switch action {
        case .mkdir: return "mkdir \(path)"
        case .write(let v): return "write \(path) \(v)"
        }
    }
}

extension Array where Element == CgroupWrite {
    /// The plan as text, one step a line, for `--dry-run` and golden tests.
    public func render() -> String { map(\.description).joined(separator: "\n") + "\n" }
}

/// What a jail's cgroup reports. nil: the running kernel does not provide that figure
/// (e.g. memory.peak before Linux 5.19, or no memory controller delegated on v2).
public struct CgroupStats: Sendable, Equatable {
    public var memoryCurrent: UInt64?
    public var memoryPeak: UInt64?
    public var pidsCurrent: Int?
    /// Highest pids.current seen (pids.peak, Linux 6.1+).
    public var pidsPeak: Int?
    /// Forks refused because pids.max was reached (the "max" line of pids.events).
    public var pidsRefused: UInt64?
    public var cpuUsageMicros: UInt64?
    /// OOM kills inside the cgroup. On v1 kernels without the oom_kill field of
    /// memory.oom_control this is memory.failcnt, the number of times the limit was hit,
    /// an upper bound rather than a count of kills.
    public var oomKills: UInt64?

    public init(memoryCurrent: UInt64? = nil, memoryPeak: UInt64? = nil, pidsCurrent: Int? = nil,
                pidsPeak: Int? = nil, pidsRefused: UInt64? = nil, cpuUsageMicros: UInt64? = nil, oomKills: UInt64? = nil) {
        self.memoryCurrent = memoryCurrent
        self.memoryPeak = memoryPeak
        self.pidsCurrent = pidsCurrent
        self.pidsPeak = pidsPeak
        self.pidsRefused = pidsRefused
        self.cpuUsageMicros = cpuUsageMicros
        self.oomKills = oomKills
    }
}

public enum CgroupVersion: String, Sendable, Equatable { case v1, v2 }

/// Names of what jailctl creates, in one place, so the leak check and the code agree.
enum CgroupNames {
    static func instanceDirectory(_ instance: String) -> String { "jailctl." + instance }

    /// An instance or jail name becomes one path component: nothing that could climb or
    /// descend (`/`, `..`) or collide with a kernel control file (`cgroup.*`, `memory.*`).
    static func checkComponent(_ s: String, what: String) throws {
        let ok = !s.isEmpty && s.count <= 200 && s != "." && s != ".."
            && s.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f || c == 0x40
            }
        if !ok { throw JailError(.invalidSpec, "cgroup: \(what) \"\(s)\" must be letters, digits, '-', '_' or '@'") }
    }
}
