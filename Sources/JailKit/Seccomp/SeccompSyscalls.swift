import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// System call names and numbers, from libseccomp's table for the native ABI.
public enum SeccompSyscalls {
    public enum Resolution: Equatable, Sendable {
        case number(Int32)
        /// A system call of another ABI only (stime, vm86 on x86_64): a rule for it can
        /// never match here, so the compiler leaves it out.
        case notOnThisArchitecture
        case unknown
    }

    public static func resolve(_ name: String) -> Resolution {
        let nr = seccomp_syscall_resolve_name_arch(UInt32(SCMP_ARCH_NATIVE), name)
        // __NR_SCMP_ERROR is -1; other negative numbers are libseccomp's pseudo numbers
        // for calls that exist on some architecture but not this one.
        if nr == -1 { return .unknown }
        if nr < 0 { return .notOnThisArchitecture }
        return .number(nr)
    }

    /// The native name of a number, nil when libseccomp has none.
    public static func name(of number: Int32) -> String? {
        guard let p = seccomp_syscall_resolve_num_arch(UInt32(SCMP_ARCH_NATIVE), number) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// Every native system call libseccomp knows, by number.
    public static func table() -> [(number: Int32, name: String)] {
        (0..<1024).compactMap { nr in name(of: nr).map { (nr, $0) } }
    }

    /// Throws for the first unknown name, with a did-you-mean from the native table.
    static func validate(_ names: [String]) throws {
        for name in names where resolve(name) == .unknown {
            let hint = SpecRules.suggestion(for: name, among: table().map(\.name)).map { "; did you mean \"\($0)\"?" } ?? ""
            throw JailError(.invalidSpec, "seccomp: unknown system call \"\(name)\"\(hint)")
        }
    }
}
