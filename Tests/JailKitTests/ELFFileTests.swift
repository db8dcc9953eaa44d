import JailKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ELFFileTests {
    @Test func parsesLs() throws {
        let elf = try ELFFile(path: "/usr/bin/ls")
        #expect(elf.machine == .host)
        #expect(elf.interpreter == "/lib64/ld-linux-x86-64.so.2")
        #expect(elf.needed.contains("libc.so.6"))
        #expect(elf.isDynamic)
        #expect(elf.soname == nil)
    }

    @Test func parsesLibcSoname() throws {
        let elf = try ELFFile(path: "/lib/x86_64-linux-gnu/libc.so.6")
        #expect(elf.type == .sharedObject)
        #expect(elf.soname == "libc.so.6")
        #expect(elf.interpreter != nil)  // libc.so.6 is runnable: it prints its version
        #expect(elf.needed == ["ld-linux-x86-64.so.2"])
    }

    @Test func staticBinaryHasNoDependencies() throws {
        let elf = try ELFFile(path: "/usr/sbin/ldconfig")
        #expect(!elf.isDynamic)
        #expect(elf.needed.isEmpty)
        #expect(elf.interpreter == nil)
    }

    @Test func truncatedAndNonELFFilesGiveTypedErrors() throws {
        let dir = try #require(ELFTestSupport.makeTempDirectory())
        defer { ELFTestSupport.removeTree(dir) }
        let ls = try #require(ELFTestSupport.read("/usr/bin/ls"))

        let text = dir + "/text"
        #expect(ELFTestSupport.write(Array("#!/bin/sh\necho hi\n".utf8), to: text))
        #expect(throws: ELFFile.Error.notELF(path: text)) { try ELFFile(path: text) }

        let empty = dir + "/empty"
        #expect(ELFTestSupport.write([], to: empty))
        #expect(throws: ELFFile.Error.self) { try ELFFile(path: empty) }

        #expect(throws: ELFFile.Error.unreadable(path: dir + "/absent", errno: ENOENT)) {
            try ELFFile(path: dir + "/absent")
        }

        // Every prefix length that cuts a structure the parser needs must throw, not trap.
        for length in [3, 20, 63, 64, 100, 600, 4096, ls.count / 2] {
            let cut = dir + "/cut\(length)"
            #expect(ELFTestSupport.write(Array(ls.prefix(length)), to: cut))
            #expect(throws: ELFFile.Error.self) { try ELFFile(path: cut) }
        }

        var elf32 = ls
        elf32[4] = 1
        let p32 = dir + "/elf32"
        #expect(ELFTestSupport.write(elf32, to: p32))
        #expect(throws: ELFFile.Error.unsupportedClass(path: p32, elfClass: 1)) { try ELFFile(path: p32) }

        var sparc = ls
        sparc[18] = 2
        sparc[19] = 0
        let ps = dir + "/sparc"
        #expect(ELFTestSupport.write(sparc, to: ps))
        #expect(throws: ELFFile.Error.unsupportedMachine(path: ps, machine: 2)) { try ELFFile(path: ps) }
    }

    /// Random byte flips in the headers of a real binary: any outcome but a crash is fine.
    @Test func corruptedHeadersNeverCrash() throws {
        let dir = try #require(ELFTestSupport.makeTempDirectory())
        defer { ELFTestSupport.removeTree(dir) }
        let ls = try #require(ELFTestSupport.read("/usr/bin/ls"))
        var rng = SystemRandomNumberGenerator()
        let path = dir + "/fuzz"
        for _ in 0..<300 {
            var copy = ls
            for _ in 0..<8 {
                let at = Int.random(in: 16..<min(copy.count, 1024), using: &rng)
                copy[at] = UInt8.random(in: 0...255, using: &rng)
            }
            #expect(ELFTestSupport.write(copy, to: path))
            _ = try? ELFFile(path: path)
        }
    }

    @Test func symlinkChainFollowsMergedUsr() throws {
        let chain = try SymlinkChain.entries(for: "/lib64/ld-linux-x86-64.so.2")
        #expect(chain.first == .symlink("/lib64", target: "usr/lib64"))
        guard case .file(let real)? = chain.last else {
            Issue.record("no file at the end of \(chain)")
            return
        }
        #expect(ELFTestSupport.realPath("/lib64/ld-linux-x86-64.so.2") == real)
        #expect(throws: SymlinkChain.Error.self) { try SymlinkChain.entries(for: "/nonexistent/x") }
        #expect(throws: SymlinkChain.Error.notAbsolute("x")) { try SymlinkChain.entries(for: "x") }
    }

    @Test func symlinkLoopIsAnError() throws {
        let dir = try #require(ELFTestSupport.makeTempDirectory())
        defer { ELFTestSupport.removeTree(dir) }
        #expect(symlink("b", dir + "/a") == 0)
        #expect(symlink("a", dir + "/b") == 0)
        #expect(throws: SymlinkChain.Error.tooManyLinks(dir + "/a")) { try SymlinkChain.entries(for: dir + "/a") }
    }
}
