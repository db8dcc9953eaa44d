import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// Turns a `SeccompProfile` into the bytes of a classic BPF program (struct sock_filter[],
/// 8 bytes per instruction) in the parent; the jail's child only hands them to the kernel.
public enum SeccompCompiler {
    /// The kernel refuses longer programs (BPF_MAXINSNS).
    public static let maxInstructions = 4096

    public static func compile(_ profile: SeccompProfile) throws -> [UInt8] {
        let fast = plainAllows(profile)
        let newer = plainNewer(profile)
        let program = try withFilter(profile, leavingOut: Set(fast), newerLeftOut: Set(newer)) { ctx in
            try export(ctx, "bpf", seccomp_export_bpf)
        }
        var guarded = ranges(fast).map { ($0, actionValue(.allow)) }
        if let action = profile.newerSyscalls?.action { guarded += ranges(newer).map { ($0, actionValue(action)) } }
        return try ioctlGuard(profile.deniedIoctls) + rangeGuard(guarded) + program
    }

    /// Most ranges the range guard takes: its jumps are 8-bit (at most 255 forward).
    static let maxGuardRanges = 120

    /// System calls whose only rules are unconditional allows, when the default is not
    /// allow; empty when there are too many ranges of them for `rangeGuard`. The kernel
    /// converts and JIT-compiles the whole program at every launch, in time proportional
    /// to its length: libseccomp spends one to two instructions per allowed call (the
    /// default profile's ~390 came to ~470 instructions, a tenth of a launch), the guard
    /// two per range of numbers.
    static func plainAllows(_ profile: SeccompProfile) -> [Int32] {
        guard profile.defaultAction != .allow else { return [] }
        var plain: [Int32: Bool] = [:]
        for rule in profile.rules {
            guard case .number(let nr) = SeccompSyscalls.resolve(rule.syscall) else { continue }
            let isPlain = rule.action == .allow && rule.conditions.isEmpty
            plain[nr] = (plain[nr] ?? true) && isPlain
        }
        // Numbers the newer-calls rule covers stay with libseccomp, which decides between
        // the two rules.
        if let newer = profile.newerSyscalls { for nr in plain.keys where nr > newer.reviewedThrough { plain[nr] = false } }
        let numbers = plain.filter(\.value).keys.sorted()
        return ranges(numbers).count + ranges(plainNewer(profile)).count <= maxGuardRanges ? numbers : []
    }

    /// Numbers of the newer-calls range that no rule names: the guard answers them with
    /// the range's action (one range, instead of a rule per number in libseccomp's
    /// program); those a rule names stay with libseccomp.
    static func plainNewer(_ profile: SeccompProfile) -> [Int32] {
        guard let newer = profile.newerSyscalls, newer.action != profile.defaultAction, newer.reviewedThrough < newer.upTo
        else { return [] }
        var named: Set<Int32> = []
        for rule in profile.rules {
            if case .number(let nr) = SeccompSyscalls.resolve(rule.syscall) { named.insert(nr) }
        }
        let numbers = ((newer.reviewedThrough + 1)...newer.upTo).filter { !named.contains($0) }
        return ranges(numbers).count <= maxGuardRanges / 2 ? numbers : []
    }

    static func ranges(_ sorted: [Int32]) -> [ClosedRange<UInt32>] {
        var out: [ClosedRange<UInt32>] = []
        for n in sorted.map({ UInt32(bitPattern: $0) }) {
            if let last = out.last, last.upperBound &+ 1 == n {
                out[out.count - 1] = last.lowerBound...n
            } else {
                out.append(n...n)
            }
        }
        return out
    }

    /// Classic BPF that answers the native ABI's calls numbered in each range with that
    /// range's action, and falls through to the instruction after it for every other call
    /// (and every other ABI: x32 numbers have bit 30 set, above every range). Ranges
    /// ascend and do not overlap, so a number below a range is in none after it.
    static func rangeGuard(_ entries: [(ClosedRange<UInt32>, UInt32)]) -> [UInt8] {
        let sorted = entries.sorted { $0.0.lowerBound < $1.0.lowerBound }
        guard !sorted.isEmpty, sorted.count <= maxGuardRanges else { return [] }
        let ldW: UInt16 = 0x20, jeqK: UInt16 = 0x15, jgtK: UInt16 = 0x25, jgeK: UInt16 = 0x35, retK: UInt16 = 0x06
        var actions: [UInt32] = []
        for (_, a) in sorted where !actions.contains(a) { actions.append(a) }
        // 0: ld arch; 1: jeq native ? next : out; 2: ld nr; then per range at p:
        // jgt upper ? next range (out after the last) : p+1; jge lower ? its ret : out;
        // then one ret per action; out is the instruction after them.
        let firstRet = 3 + 2 * sorted.count
        let out = firstRet + actions.count
        func to(_ target: Int, from i: Int) -> UInt8 { UInt8(target - i - 1) }
        var insns: [(UInt16, UInt8, UInt8, UInt32)] = [(ldW, 0, 0, 4), (jeqK, 0, to(out, from: 1), seccomp_arch_native()), (ldW, 0, 0, 0)]
        for (j, (r, action)) in sorted.enumerated() {
            let p = 3 + 2 * j
            let ret = firstRet + (actions.firstIndex(of: action) ?? 0)
            insns.append((jgtK, j == sorted.count - 1 ? to(out, from: p) : 1, 0, r.upperBound))
            insns.append((jgeK, to(ret, from: p + 1), to(out, from: p + 1), r.lowerBound))
        }
        for a in actions { insns.append((retK, 0, 0, a)) }
        return encode(insns)
    }

    /// The guard for allowed numbers only (tests).
    static func allowGuard(_ numbers: [Int32]) -> [UInt8] {
        rangeGuard(ranges(numbers).map { ($0, actionValue(.allow)) })
    }

    static func encode(_ insns: [(UInt16, UInt8, UInt8, UInt32)]) -> [UInt8] {
        var out: [UInt8] = []
        for (code, jt, jf, k) in insns {
            withUnsafeBytes(of: code) { out += $0 }
            out += [jt, jf]
            withUnsafeBytes(of: k) { out += $0 }
        }
        return out
    }

    /// Classic BPF that refuses the given ioctl requests with EPERM and otherwise falls
    /// through to the instruction after it (libseccomp's program, whose jumps are all
    /// relative and forward, so it runs unchanged behind this). Native architecture
    /// only: another ABI falls through to libseccomp's bad-architecture action.
    static func ioctlGuard(_ requests: [UInt32]) throws -> [UInt8] {
        guard !requests.isEmpty else { return [] }
        guard case .number(let ioctl) = SeccompSyscalls.resolve("ioctl") else {
            throw JailError(.system, "seccomp: no ioctl number for this architecture")
        }
        let arch = seccomp_arch_native()
        // struct seccomp_data: nr at 0, arch at 4, args[1] at 24 (its low half on a
        // little-endian machine, 28 on a big-endian one).
        var one: UInt16 = 1
        let littleEndian = withUnsafeBytes(of: &one) { $0[0] == 1 }
        let arg1Low: UInt32 = littleEndian ? 24 : 28
        let ldW: UInt16 = 0x20, jeqK: UInt16 = 0x15, retK: UInt16 = 0x06
        let n = requests.count
        // 0: ld arch; 1: jeq native ? next : out; 2: ld nr; 3: jeq ioctl ? next : out;
        // 4: ld args[1] low; 5...: jeq request ? deny : next; then ja out (jeq 0,0 never
        // needed: the last jeq's false branch skips the deny); deny: ret ERRNO(EPERM).
        var insns: [(UInt16, UInt8, UInt8, UInt32)] = []
        let total = 5 + n + 1  // through the deny instruction
        func toOut(from i: Int) -> UInt8 { UInt8(total - i - 1) }
        insns.append((ldW, 0, 0, 4))
        insns.append((jeqK, 0, toOut(from: 1), arch))
        insns.append((ldW, 0, 0, 0))
        insns.append((jeqK, 0, toOut(from: 3), UInt32(ioctl)))
        insns.append((ldW, 0, 0, arg1Low))
        for (k, r) in requests.enumerated() {
            let i = 5 + k
            let deny = UInt8(total - 1 - i - 1)
            insns.append((jeqK, deny, k == n - 1 ? toOut(from: i) : 0, r))
        }
        insns.append((retK, 0, 0, actionValue(.eperm)))
        return encode(insns)
    }

    /// libseccomp's own pseudo-code of the compiled filter, for `inspect --seccomp --pfc`.
    public static func pseudoCode(_ profile: SeccompProfile) throws -> String {
        String(decoding: try withFilter(profile) { ctx in try export(ctx, "pfc", seccomp_export_pfc) }, as: UTF8.self)
    }

    // MARK: libseccomp

    // The libseccomp macros Swift does not import, with their values from <seccomp.h>.
    static func actionValue(_ a: SeccompAction) -> UInt32 {
        switch a {
        case .allow: return 0x7fff_0000  // SCMP_ACT_ALLOW
        case .killProcess: return 0x8000_0000  // SCMP_ACT_KILL_PROCESS
        case .errno(let e): return 0x0005_0000 | (UInt32(truncatingIfNeeded: e) & 0xffff)  // SCMP_ACT_ERRNO(e)
        }
    }

    static func argument(_ c: SeccompCondition) -> scmp_arg_cmp {
        switch c.comparison {
        case .equal(let v): return scmp_arg_cmp(arg: c.argument, op: SCMP_CMP_EQ, datum_a: v, datum_b: 0)
        case .notEqual(let v): return scmp_arg_cmp(arg: c.argument, op: SCMP_CMP_NE, datum_a: v, datum_b: 0)
        case .maskedEqual(let m, let v): return scmp_arg_cmp(arg: c.argument, op: SCMP_CMP_MASKED_EQ, datum_a: m, datum_b: v)
        }
    }

    /// `leavingOut`, `newerLeftOut`: numbers whose rules, or whose newer-calls rule, the
    /// range guard in front of the program answers.
    static func withFilter<T>(_ profile: SeccompProfile, leavingOut: Set<Int32> = [], newerLeftOut: Set<Int32> = [],
                              _ body: (scmp_filter_ctx) throws -> T) throws -> T {
        guard let ctx = seccomp_init(actionValue(profile.defaultAction)) else {
            throw JailError(.system, "seccomp: seccomp_init failed (invalid default action \(profile.defaultAction)?)")
        }
        defer { seccomp_release(ctx) }
        try libseccomp("set the bad-architecture action", seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, actionValue(profile.badArchAction)))
        // A binary search over syscall numbers instead of a linear list: a call pays
        // ~log2(rules) comparisons, not one per rule. (Calls allowed without conditions
        // skip the filter altogether on kernels >= 5.11, which cache constant actions.)
        try libseccomp("set the optimization level", seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2))
        // seccomp_init holds the native ABI and only it; `SeccompArchitecture` has no
        // other case, so i386 and x32 calls always meet the bad-architecture action.
        for rule in profile.rules {
            // libseccomp refuses a rule that does what the default does (EACCES); it
            // would change nothing, and the profile keeps it for the record.
            if rule.action == profile.defaultAction { continue }
            let nr: Int32
            switch SeccompSyscalls.resolve(rule.syscall) {
            case .number(let n): nr = n
            case .notOnThisArchitecture: continue  // nothing can reach it
            case .unknown: throw JailError(.invalidSpec, "seccomp: unknown system call \"\(rule.syscall)\"")
            }
            if leavingOut.contains(nr) { continue }
            let args = rule.conditions.map(argument)
            let rc = args.withUnsafeBufferPointer { buf in
                seccomp_rule_add_array(ctx, actionValue(rule.action), nr, UInt32(buf.count), buf.baseAddress)
            }
            let what = rule.conditions.isEmpty ? "" : " when " + rule.conditions.map(\.description).joined(separator: " && ")
            try libseccomp("rule \(rule.action) \(rule.syscall)\(what)", rc)
        }
        if let newer = profile.newerSyscalls, newer.action != profile.defaultAction, newer.reviewedThrough < newer.upTo {
            for nr in (newer.reviewedThrough + 1)...newer.upTo where !newerLeftOut.contains(nr) {
                try libseccomp("rule \(newer.action) for system call #\(nr)", seccomp_rule_add_array(ctx, actionValue(newer.action), nr, 0, nil))
            }
        }
        return try body(ctx)
    }

    /// libseccomp returns -errno.
    static func libseccomp(_ what: @autoclosure () -> String, _ rc: Int32) throws {
        if rc < 0 { throw JailError(.system, "seccomp: \(what()): \(strerrorString(-rc))") }
    }

    /// libseccomp writes to a descriptor; an unlinked temporary file holds the output
    /// whatever its size (a pipe would block past its buffer; Glibc's module does not
    /// export memfd_create).
    static func export(_ ctx: scmp_filter_ctx, _ what: String, _ writer: (scmp_filter_ctx, Int32) -> Int32) throws -> [UInt8] {
        guard let file = tmpfile() else { throw JailError(.system, "seccomp: tmpfile: \(strerrorString(errno))") }
        defer { fclose(file) }
        let fd = fileno(file)
        try libseccomp("export \(what)", writer(ctx, fd))
        if lseek(fd, 0, SEEK_SET) < 0 { throw JailError(.system, "seccomp: lseek: \(strerrorString(errno))") }
        return try FS.readAll(fd, path: "seccomp \(what)")
    }
}
