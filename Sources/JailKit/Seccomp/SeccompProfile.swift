#if canImport(Glibc)
import Glibc
#endif

/// What the filter does with a system call.
public enum SeccompAction: Sendable, Hashable, CustomStringConvertible {
    case allow
    /// Fails the call with this errno; the program sees an ordinary error and goes on.
    case errno(Int32)
    /// The whole process dies of SIGSYS (not just the thread: a half-dead process is worse).
    case killProcess

    public static let eperm = SeccompAction.errno(EPERM)
    public static let enosys = SeccompAction.errno(ENOSYS)

    public var description: String {
        switch self {
        case .allow: return "allow"
        case .killProcess: return "kill-process"
        case .errno(EPERM): return "errno EPERM"
        case .errno(ENOSYS): return "errno ENOSYS"
        case .errno(let e): return "errno \(e)"
        }
    }
}

/// A test of one system call argument, as the kernel sees it (a 64-bit register).
public struct SeccompCondition: Sendable, Hashable, CustomStringConvertible {
    public enum Comparison: Sendable, Hashable {
        case equal(UInt64)
        case notEqual(UInt64)
        /// (arg & mask) == value
        case maskedEqual(mask: UInt64, value: UInt64)
    }

    /// 0...5, the argument's position in the system call.
    public var argument: UInt32
    public var comparison: Comparison

    public init(argument: UInt32, _ comparison: Comparison) {
        self.argument = argument
        self.comparison = comparison
    }

    public var description: String {
        let a = "arg\(argument)"
        switch comparison {
        case .equal(let v): return "\(a) == \(hex(v))"
        case .notEqual(let v): return "\(a) != \(hex(v))"
        case .maskedEqual(let m, let v): return "(\(a) & \(hex(m))) == \(hex(v))"
        }
    }
}

/// One rule: this action for this system call, when every condition holds. Several rules
/// for one system call are alternatives (any may match).
public struct SeccompRule: Sendable, Hashable {
    public var syscall: String
    public var action: SeccompAction
    public var conditions: [SeccompCondition]
    /// Why the rule exists, shown by `jailctl inspect --seccomp`.
    public var reason: String

    public init(_ syscall: String, _ action: SeccompAction, when conditions: [SeccompCondition] = [], reason: String = "") {
        self.syscall = syscall
        self.action = action
        self.conditions = conditions
        self.reason = reason
    }
}

/// The ABIs the filter accepts. Every other ABI hits `badArchAction`.
public enum SeccompArchitecture: String, Sendable, Hashable {
    /// The ABI of jailctl itself (x86_64 on the hosts we target). On x86_64 libseccomp
    /// also refuses x32 calls (the 0x40000000 bit) as a foreign ABI.
    case native
}

/// A seccomp policy as a value: planned and printed in Swift, compiled by
/// `SeccompCompiler` in the parent, loaded by the launcher just before execve.
public struct SeccompProfile: Sendable, Hashable {
    public var name: String
    /// For every system call no rule matches.
    public var defaultAction: SeccompAction
    /// For a call made through another ABI than `architectures` (i386 `int 0x80`, x32).
    public var badArchAction: SeccompAction
    public var architectures: [SeccompArchitecture]
    public var rules: [SeccompRule]
    /// System calls numbered above the reviewed table (added to the kernel after this
    /// profile was written) get this action instead of the default; see `defaultProfile`.
    public var newerSyscalls: NewerSyscalls?
    /// ioctl requests refused with EPERM whatever the rules say (compared on their low 32
    /// bits, as the kernel reads them). libseccomp cannot express "allow ioctl except
    /// these": its unconditional allow wins over conditional denials, so the compiler
    /// puts these in front of its program (`SeccompCompiler.ioctlGuard`).
    public var deniedIoctls: [UInt32] = []

    public struct NewerSyscalls: Sendable, Hashable {
        /// The highest system call number that was reviewed (and is named by libseccomp).
        public var reviewedThrough: Int32
        /// Rules are emitted per number, so the range has an end; the kernel's own
        /// numbering is below 500 in 2025 and grows by about ten a year. Above it the
        /// default action applies.
        public var upTo: Int32
        public var action: SeccompAction
    }

    public init(name: String, defaultAction: SeccompAction, badArchAction: SeccompAction = .killProcess,
                architectures: [SeccompArchitecture] = [.native], rules: [SeccompRule] = [], newerSyscalls: NewerSyscalls? = nil) {
        self.name = name
        self.defaultAction = defaultAction
        self.badArchAction = badArchAction
        self.architectures = architectures
        self.rules = rules
        self.newerSyscalls = newerSyscalls
    }

    /// The rules for one system call.
    public func rules(for syscall: String) -> [SeccompRule] { rules.filter { $0.syscall == syscall } }

    /// What a call of `syscall` with no particular arguments meets first: its unconditional
    /// rule if there is one, else nil (conditional rules or the default decide).
    public func unconditionalAction(for syscall: String) -> SeccompAction? {
        rules.first { $0.syscall == syscall && $0.conditions.isEmpty }?.action
    }
}

// MARK: - Per-jail edits

extension SeccompProfile {
    /// The profile of a jail from its spec: `profile` is "default" or "unconfined"
    /// (nil: no filter at all), then `allow` and `deny` edit the default. Every name is
    /// checked against libseccomp's table; an unknown one is an error naming it.
    public static func forJail(profile: String = "default", allow: [String] = [], deny: [String] = []) throws -> SeccompProfile? {
        switch profile {
        case "unconfined":
            if !allow.isEmpty || !deny.isEmpty {
                throw JailError(.invalidSpec, "seccomp: allow and deny need a profile; \"unconfined\" has no filter to edit")
            }
            return nil
        case "default":
            if let both = allow.first(where: deny.contains) {
                throw JailError(.invalidSpec, "seccomp: \"\(both)\" is both allowed and denied")
            }
            return try defaultProfile.allowing(allow).denying(deny)
        default:
            throw JailError(.invalidSpec, "seccomp: unknown profile \"\(profile)\"; valid: \"default\", \"unconfined\"")
        }
    }

    /// Every rule of these system calls is replaced by a plain allow: `allow = ["clone"]`
    /// allows clone with any flags, not only without namespace flags.
    public func allowing(_ names: [String]) throws -> SeccompProfile {
        try SeccompSyscalls.validate(names)
        var p = self
        for name in names {
            p.rules.removeAll { $0.syscall == name }
            p.rules.append(SeccompRule(name, .allow, reason: "allowed by the jail's spec"))
        }
        return p
    }

    /// Every rule of these system calls is replaced by a plain EPERM denial.
    public func denying(_ names: [String]) throws -> SeccompProfile {
        try SeccompSyscalls.validate(names)
        var p = self
        for name in names {
            p.rules.removeAll { $0.syscall == name }
            p.rules.append(SeccompRule(name, .eperm, reason: "denied by the jail's spec"))
        }
        return p
    }
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
