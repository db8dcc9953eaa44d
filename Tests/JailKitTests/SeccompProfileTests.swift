import Glibc
import Testing

@testable import JailKit

@Suite struct SeccompProfileTests {
    @Test func defaultProfileCompilesToASaneProgram() throws {
        var bytes: [UInt8] = []
        var times: [Double] = []
        for _ in 0..<5 {
            let start = monotonic()
            bytes = try SeccompCompiler.compile(.defaultProfile)
            times.append((monotonic() - start) * 1000)
        }
        let elapsed = times.map { "\(Int($0 * 1000)) µs" }.joined(separator: ", ")
        #expect(bytes.count % 8 == 0)
        let instructions = bytes.count / 8
        #expect(instructions > 10)
        #expect(instructions < SeccompCompiler.maxInstructions)
        print("seccomp default profile: \(instructions) instructions, compile times \(elapsed)")
    }

    @Test func everyNameOfTheDefaultProfileIsKnown() {
        for rule in SeccompProfile.defaultProfile.rules {
            #expect(SeccompSyscalls.resolve(rule.syscall) != .unknown, "\(rule.syscall)")
        }
    }

    /// The allowlist covers the whole reviewed table: every call is allowed, denied with a
    /// reason, or handled by a named rule. A libseccomp with a longer table makes this fail,
    /// which is the moment to review the new calls.
    @Test func reviewedTableIsFullyClassified() {
        let p = SeccompProfile.defaultProfile
        let named = Set(p.rules.map(\.syscall))
        let unimplemented: Set = ["afs_syscall", "getpmsg", "putpmsg", "security", "tuxcall", "vserver", "epoll_ctl_old", "epoll_wait_old"]
        let table = SeccompSyscalls.table()
        #expect(table.last?.number == SeccompProfile.reviewedThrough)
        for (_, name) in table where !named.contains(name) && !unimplemented.contains(name) {
            Issue.record("\(name) is neither allowed nor denied")
        }
    }

    @Test func renderedProfileShowsDenialsAndConditions() throws {
        let text = SeccompCompiler.render(.defaultProfile)
        #expect(text.contains("default errno EPERM"))
        #expect(text.contains("errno EPERM   keyctl"))
        #expect(text.contains("errno ENOSYS  clone3"))
        #expect(text.contains("allow         clone"))
        #expect(text.contains("(arg0 & 0x7e020000) == 0x0"))
        #expect(text.contains("newer system calls #457...#511: errno ENOSYS"))
    }

    @Test func allowAndDenyEditTheProfile() throws {
        let base = SeccompCompiler.render(.defaultProfile)
        let edited = try #require(try SeccompProfile.forJail(allow: ["ptrace"], deny: ["chroot"]))
        #expect(edited.unconditionalAction(for: "ptrace") == .allow)
        #expect(edited.unconditionalAction(for: "chroot") == .eperm)
        #expect(SeccompProfile.defaultProfile.unconditionalAction(for: "ptrace") == .eperm)
        let text = SeccompCompiler.render(edited)
        #expect(text != base)
        #expect(text.contains("allow         ptrace"))
        #expect(text.contains("errno EPERM   chroot"))
        // The edit reaches the program (a lifted denial joins two ranges of allowed
        // numbers: the program changes, and may get shorter).
        let a = try SeccompCompiler.compile(.defaultProfile)
        let b = try SeccompCompiler.compile(try SeccompProfile.defaultProfile.allowing(["ptrace"]))
        #expect(b != a)
    }

    @Test func allowingCloneDropsItsFlagCondition() throws {
        let p = try SeccompProfile.defaultProfile.allowing(["clone"])
        #expect(p.rules(for: "clone").count == 1)
        #expect(p.unconditionalAction(for: "clone") == .allow)
    }

    @Test func unknownSyscallNamesAreErrorsNamingTheName() {
        #expect { try SeccompProfile.forJail(deny: ["keyctll"]) } throws: { error in
            "\(error)".contains("\"keyctll\"") && "\(error)".contains("did you mean \"keyctl\"")
        }
        #expect { try SeccompProfile.forJail(allow: ["no_such_call"]) } throws: { "\($0)".contains("\"no_such_call\"") }
        #expect { try SeccompProfile.forJail(allow: ["ptrace"], deny: ["ptrace"]) } throws: { "\($0)".contains("both") }
        #expect { try SeccompProfile.forJail(profile: "strict") } throws: { "\($0)".contains("\"strict\"") }
    }

    @Test func unconfinedMeansNoFilter() throws {
        #expect(try SeccompProfile.forJail(profile: "unconfined") == nil)
    }

    @Test func pseudoCodeNamesTheRules() throws {
        let pfc = try SeccompCompiler.pseudoCode(.defaultProfile)
        #expect(pfc.contains("\"clone3\""))
        #expect(pfc.contains("ERRNO(38)"))
        #expect(pfc.contains("KILL_PROCESS"))
    }
}

/// The allow guard in front of libseccomp's program, run by a small classic-BPF
/// interpreter of the instructions it uses: it allows exactly the given numbers of the
/// native ABI and falls through (to libseccomp's program) for everything else.
@Suite struct SeccompAllowGuardTests {
    /// ALLOW, or nil when the program falls off its end (the next part decides).
    static func run(_ program: [UInt8], arch: UInt32, nr: UInt32) -> UInt32? {
        func word(_ i: Int, _ o: Int) -> UInt32 {
            (0..<4).reduce(0) { $0 | UInt32(program[i * 8 + o + $1]) << (8 * UInt32($1)) }
        }
        var pc = 0, acc: UInt32 = 0
        while pc < program.count / 8 {
            let code = UInt16(program[pc * 8]) | UInt16(program[pc * 8 + 1]) << 8
            let jt = Int(program[pc * 8 + 2]), jf = Int(program[pc * 8 + 3]), k = word(pc, 4)
            switch code {
            case 0x20: acc = k == 4 ? arch : (k == 0 ? nr : 0); pc += 1
            case 0x15: pc += 1 + (acc == k ? jt : jf)
            case 0x25: pc += 1 + (acc > k ? jt : jf)
            case 0x35: pc += 1 + (acc >= k ? jt : jf)
            case 0x06: return k
            default: Issue.record("unexpected BPF code \(code)"); return nil
            }
        }
        return nil
    }

    @Test func allowsExactlyTheNumbersOfTheNativeABI() {
        let numbers: [Int32] = [0, 1, 2, 3, 5, 7, 8, 9, 100, 101, 200, 455, 456]
        let program = SeccompCompiler.allowGuard(numbers)
        // The native AUDIT_ARCH value, as the guard compares it (its second instruction).
        let native = (0..<4).reduce(UInt32(0)) { $0 | UInt32(program[8 + 4 + $1]) << (8 * UInt32($1)) }
        for nr in UInt32(0)..<600 {
            let allowed = numbers.contains(Int32(nr))
            #expect(Self.run(program, arch: native, nr: nr) == (allowed ? 0x7fff_0000 : nil), "nr \(nr)")
        }
        // x32 numbers (bit 30) and other ABIs fall through to libseccomp's program.
        #expect(Self.run(program, arch: native, nr: 0x4000_0001) == nil)
        #expect(Self.run(program, arch: native &+ 1, nr: 1) == nil)
    }

    @Test func defaultProfileGuardCoversThePlainAllows() {
        let plain = SeccompCompiler.plainAllows(.defaultProfile)
        #expect(plain.count > 250)
        print("default profile: \(plain.count) plain allows in \(SeccompCompiler.ranges(plain).count) ranges; program \((try? SeccompCompiler.compile(.defaultProfile).count).map { $0 / 8 } ?? 0) instructions")
        // Conditional ones stay with libseccomp: clone (namespace flags), personality.
        for name in ["clone", "personality"] {
            guard case .number(let nr) = SeccompSyscalls.resolve(name) else { continue }
            #expect(!plain.contains(nr), "\(name)")
        }
        // Denied ones are not allowed by it.
        for name in ["keyctl", "bpf", "ptrace", "mount"] {
            guard case .number(let nr) = SeccompSyscalls.resolve(name) else { continue }
            #expect(!plain.contains(nr), "\(name)")
        }
    }

    @Test func newerCallsGetTheirActionFromTheGuard() throws {
        let profile = SeccompProfile.defaultProfile
        let newer = try #require(profile.newerSyscalls)
        let guarded = SeccompCompiler.plainNewer(profile)
        #expect(guarded.first == newer.reviewedThrough + 1 && guarded.last == newer.upTo)
        let program = SeccompCompiler.rangeGuard(
            SeccompCompiler.ranges(SeccompCompiler.plainAllows(profile)).map { ($0, SeccompCompiler.actionValue(.allow)) }
                + SeccompCompiler.ranges(guarded).map { ($0, SeccompCompiler.actionValue(newer.action)) })
        let native = (0..<4).reduce(UInt32(0)) { $0 | UInt32(program[8 + 4 + $1]) << (8 * UInt32($1)) }
        #expect(Self.run(program, arch: native, nr: UInt32(newer.upTo)) == SeccompCompiler.actionValue(newer.action))
        #expect(Self.run(program, arch: native, nr: UInt32(newer.upTo) + 1) == nil)
        #expect(Self.run(program, arch: native, nr: 0) == SeccompCompiler.actionValue(.allow))
    }

    @Test func tooManyRangesMeansNoGuard() {
        let every2nd = (0..<Int32(2 * (SeccompCompiler.maxGuardRanges + 1))).filter { $0 % 2 == 0 }
        #expect(SeccompCompiler.allowGuard(every2nd).isEmpty)
    }
}
