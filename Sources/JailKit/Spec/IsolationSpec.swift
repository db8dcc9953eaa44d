/// How tightly a jail is held: capabilities, user namespace, seccomp, limits, filesystem.
/// Every control is on by default; a spec can only loosen what it names.
public struct IsolationSpec: Sendable, Equatable, Hashable {
    /// Capability names (without CAP_) kept for the service; empty: none at all.
    public var capabilities: [String] = []
    public var userns = false
    public var seccomp = SeccompSpec()
    public var limits = LimitsSpec()
    public var filesystem = FilesystemSpec()

    public init() {}
}

public struct SeccompSpec: Sendable, Equatable, Hashable {
    public enum Profile: String, Sendable, Hashable { case `default`, unconfined }
    public var profile: Profile = .default
    /// System calls the default profile denies that this jail may use (e.g. "ptrace").
    public var allow: [String] = []
    /// Further system calls denied with EPERM.
    public var deny: [String] = []
    public init() {}
}

public struct LimitsSpec: Sendable, Equatable, Hashable {
    public var memory: UInt64?
    public var memorySwap: UInt64?
    public var pids: Int? = 512
    public var cpu: Double?
    public var cpuWeight: Int?
    public var nofile: UInt64 = 1024
    public var nproc: UInt64?
    public var fsize: UInt64?
    public var tmpfsSize: UInt64 = 64 << 20
    public init() {}
}

public struct FilesystemSpec: Sendable, Equatable, Hashable {
    public var readonlyRoot = true
    /// Programs may be run from /tmp (default: noexec).
    public var tmpExec = false
    /// Mount a read-only /sys.
    public var sys = false
    public init() {}
}
