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
        // A lifted denial costs instructions: the edit reaches the program.
        let a = try SeccompCompiler.compile(.defaultProfile).count
        let b = try SeccompCompiler.compile(try SeccompProfile.defaultProfile.allowing(["ptrace"])).count
        #expect(b > a)
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
