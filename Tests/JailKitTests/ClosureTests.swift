import JailKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What ldd printed for one file: name -> path, and the names it could not find.
struct LddReport: Equatable {
    var resolved: [String: String] = [:]
    var missing: Set<String> = []
}

enum Ldd {
    /// Parses the per-file sections of `ldd f1 f2 ...` (a lone file has no header).
    static func parse(_ text: String, single: String? = nil) -> [String: LddReport] {
        var reports: [String: LddReport] = [:]
        var current = single
        if let single { reports[single] = LddReport() }
        for line in text.split(separator: "\n") {
            guard line.hasPrefix("\t") else {
                if line.hasSuffix(":") {
                    current = String(line.dropLast())
                    if let current { reports[current] = LddReport() }
                }
                continue
            }
            guard let file = current else { continue }
            var body = String(line.dropFirst())
            if let paren = body.firstRange(of: " (0x") { body = String(body[..<paren.lowerBound]) }
            if body == "not a dynamic executable" || body == "statically linked" || body.hasPrefix("linux-vdso.so")
            {
                continue
            }
            if let arrow = body.firstRange(of: " => ") {
                let name = String(body[..<arrow.lowerBound])
                let target = String(body[arrow.upperBound...])
                if target == "not found" {
                    reports[file, default: LddReport()].missing.insert(name)
                } else {
                    reports[file, default: LddReport()].resolved[name] = target
                }
            } else {
                reports[file, default: LddReport()].resolved[body] = body
            }
        }
        return reports
    }

    static func run(_ files: [String], parallel: Int = 1) -> [String: LddReport] {
        guard files.count > 1 else {
            guard let only = files.first else { return [:] }
            return parse(ELFTestSupport.run("ldd \(ELFTestSupport.quote(only)) 2>/dev/null").output, single: only)
        }
        guard parallel > 1, let dir = ELFTestSupport.makeTempDirectory() else {
            let args = files.map(ELFTestSupport.quote).joined(separator: " ")
            return parse(ELFTestSupport.run("ldd \(args) 2>/dev/null").output)
        }
        defer { ELFTestSupport.removeTree(dir) }
        // ldd's per-file header makes the outputs of separate runs simply concatenable. xargs,
        // not `&`/`wait`: a shell started from a test thread inherits a mask blocking
        // SIGCHLD, and its `wait` then never returns.
        let size = (files.count + parallel - 1) / parallel
        let list = dir + "/files"
        let names = files.map { $0 + "\n" }.joined()
        guard ELFTestSupport.write(Array(names.utf8), to: list) else { return [:] }
        let script = "xargs -d '\\n' -P \(parallel) -n \(size) sh -c 'ldd \"$@\" > $(mktemp -p \(dir) out.XXXXXX) 2>/dev/null' sh < \(list); cat \(dir)/out.*"
        return parse(ELFTestSupport.run(script).output)
    }
}

extension ELFTestSupport {
    static var systemELFs: (binaries: [String], libraries: [String]) {
        let binaries = elfFiles(listDirectory("/usr/bin") + listDirectory("/usr/sbin"))
        let libs = listDirectory("/usr/lib/x86_64-linux-gnu").filter { path in
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            return name.contains(".so")
                && (name.hasSuffix(".so") || name.contains(".so."))
        }
        let binarySet = Set(binaries)
        return (binaries, elfFiles(libs).filter { !binarySet.contains($0) })
    }
}

@Suite struct ClosureTests {
    /// The oracle: for every ELF of /usr/bin, /usr/sbin and /usr/lib/<triplet>/*.so*, the
    /// native closure must name exactly what ldd names, and miss exactly what ldd misses.
    /// No exceptions are needed on Debian 12: if one ever is, list it here with its reason.
    @Test func closureMatchesLddForTheWholeSystem() throws {
        let (binaries, libraries) = ELFTestSupport.systemELFs
        let files = binaries + libraries
        #expect(binaries.count > 100)

        let t0 = ELFTestSupport.now()
        let lddBinaries = Ldd.run(binaries)
        let t1 = ELFTestSupport.now()
        let lddLibraries = Ldd.run(libraries, parallel: 2)
        let oracle = lddBinaries.merging(lddLibraries) { a, _ in a }

        let config = try LinkerConfig()
        let t2 = ELFTestSupport.now()
        _ = try ELFClosure(config: config).closure(of: binaries)
        let t3 = ELFTestSupport.now()
        let native = try ELFClosure(config: config).closure(of: files)

        var differences: [String] = []
        var libs = Set<String>()
        for file in files {
            let expected = oracle[file] ?? LddReport()
            let got = native.resolved[file] ?? [:]
            libs.formUnion(got.values)
            if got != expected.resolved {
                let extra = got.filter { expected.resolved[$0.key] != $0.value }.map { "\($0.key) => \($0.value)" }
                let lacking = expected.resolved.filter { got[$0.key] != $0.value }.map { "\($0.key) => \($0.value)" }
                differences.append("\(file): native only \(extra.sorted()), ldd only \(lacking.sorted())")
            }
            let gotMissing = Set((native.missingByInput[file] ?? []).map(\.soname))
            if gotMissing != expected.missing {
                differences.append("\(file): missing native \(gotMissing.sorted()), ldd \(expected.missing.sorted())")
            }
        }
        let lddTime = t1 - t0
        let nativeTime = t3 - t2
        print(
            "ELF closure vs ldd: \(files.count) files (\(binaries.count) in bin/sbin, \(libraries.count) libraries),"
                + " \(libs.count) distinct resolved libraries, \(differences.count) differences;"
                + " bin+sbin: ldd \(Int(lddTime * 1000)) ms, native \(Int(nativeTime * 1000)) ms"
        )
        #expect(differences.isEmpty, "first differences:\n\(differences.prefix(15).joined(separator: "\n"))")
    }

    @Test func closureOfLsHasMergedUsrSymlinks() throws {
        let result = try ELFClosure(config: LinkerConfig()).closure(of: ["/usr/bin/ls"])
        #expect(result.entries.contains(.symlink("/lib64", target: "usr/lib64")))
        #expect(result.entries.contains(.symlink("/lib", target: "usr/lib")))
        #expect(result.entries.contains(.file("/usr/lib/x86_64-linux-gnu/libc.so.6")))
        #expect(result.entries.contains(.file("/usr/bin/ls")))
        #expect(result.resolved["/usr/bin/ls"]?["libc.so.6"] == "/lib/x86_64-linux-gnu/libc.so.6")
        #expect(result.reasons["/lib/x86_64-linux-gnu/libc.so.6"]?.hasPrefix("needed by /usr/bin/ls") == true)
        #expect(result.reasons["/lib64/ld-linux-x86-64.so.2"] == "interpreter of /usr/bin/ls")
        #expect(result.missing.isEmpty)
        // A symlink must come before anything reached through it.
        let lib = try #require(result.entries.firstIndex(of: .symlink("/lib", target: "usr/lib")))
        let libc = try #require(result.entries.firstIndex(of: .file("/usr/lib/x86_64-linux-gnu/libc.so.6")))
        #expect(lib < libc)
    }

    @Test func nonELFInputThrows() throws {
        let closure = try ELFClosure(config: LinkerConfig())
        #expect(throws: ELFClosure.Error.self) { try closure.closure(of: ["/etc/ld.so.conf"]) }
        #expect(throws: ELFClosure.Error.self) { try closure.closure(of: ["/nonexistent"]) }
    }

    /// $ORIGIN, RPATH inheritance, RUNPATH's direct-only scope and a missing library, on a
    /// layout built here with gcc; ldd is the oracle again.
    @Test func originRPathAndRunPath() throws {
        let gcc = ELFTestSupport.run("command -v gcc")
        try #require(gcc.status == 0, "gcc is needed to build the test layout")
        let dir = try #require(ELFTestSupport.makeTempDirectory())
        defer { ELFTestSupport.removeTree(dir) }
        let build = """
            set -e; cd \(dir); mkdir -p bin lib deep src
            echo 'int bar(void){return 2;}' > src/bar.c
            echo 'int bar(void); int foo(void){return bar()+1;}' > src/foo.c
            echo 'int foo(void); int main(void){return foo();}' > src/main.c
            echo 'int gone(void){return 0;}' > src/gone.c
            gcc -shared -fPIC -o deep/libjkbar.so.1 -Wl,-soname,libjkbar.so.1 src/bar.c
            gcc -shared -fPIC -o lib/libjkfoo.so.1.0 -Wl,-soname,libjkfoo.so.1 src/foo.c -Ldeep -l:libjkbar.so.1
            ln -s libjkfoo.so.1.0 lib/libjkfoo.so.1
            gcc -shared -fPIC -o lib/libjkgone.so -Wl,-soname,libjkgone.so src/gone.c
            gcc -o bin/rpath src/main.c -Llib -l:libjkfoo.so.1 -Wl,-rpath-link,deep \
              -Wl,--disable-new-dtags -Wl,-rpath,'$ORIGIN/../lib:$ORIGIN/../deep'
            gcc -o bin/runpath src/main.c -Llib -l:libjkfoo.so.1 -Wl,-rpath-link,deep \
              -Wl,--enable-new-dtags -Wl,-rpath,'$ORIGIN/../lib:$ORIGIN/../deep'
            gcc -o bin/gone src/main.c -Llib -l:libjkfoo.so.1 -Wl,--no-as-needed -l:libjkgone.so -Wl,-rpath-link,deep \
              -Wl,--disable-new-dtags -Wl,-rpath,'$ORIGIN/../lib'
            rm lib/libjkgone.so
            mkdir -p arm deep/glibc-hwcaps/x86-64-v2
            cp lib/libjkfoo.so.1.0 arm/libjkfoo.so.1
            printf '\\267\\000' | dd of=arm/libjkfoo.so.1 bs=1 seek=18 conv=notrunc 2>/dev/null
            cp deep/libjkbar.so.1 deep/glibc-hwcaps/x86-64-v2/
            gcc -o bin/skip src/main.c -Llib -l:libjkfoo.so.1 -Wl,-rpath-link,deep \
              -Wl,--disable-new-dtags -Wl,-rpath,'$ORIGIN/../arm:$ORIGIN/../lib:$ORIGIN/../deep'
            """
        let made = ELFTestSupport.run("(\(build)) 2>&1")
        try #require(made.status == 0, "build failed: \(made.output)")

        let rpath = dir + "/bin/rpath"
        let runpath = dir + "/bin/runpath"
        let gone = dir + "/bin/gone"
        #expect(try ELFFile(path: rpath).rpath == ["$ORIGIN/../lib", "$ORIGIN/../deep"])
        #expect(try ELFFile(path: runpath).runpath == ["$ORIGIN/../lib", "$ORIGIN/../deep"])
        #expect(try ELFFile(path: runpath).rpath == nil)

        let skip = dir + "/bin/skip"
        #expect(try ELFFile(path: dir + "/arm/libjkfoo.so.1").machine == .aarch64)

        let config = try LinkerConfig()
        let result = try ELFClosure(config: config).closure(of: [rpath, runpath, gone, skip])
        // RPATH is inherited by libjkfoo's own lookup of libjkbar, and the glibc-hwcaps
        // copy wins when the CPU has that level...
        let bar = config.hwcapsSubdirectories.contains("x86-64-v2") ? "glibc-hwcaps/x86-64-v2/libjkbar.so.1" : "libjkbar.so.1"
        #expect(result.resolved[rpath]?["libjkbar.so.1"] == dir + "/bin/../deep/" + bar)
        // ...a library of another machine earlier in the path is passed over...
        #expect(result.resolved[skip]?["libjkfoo.so.1"] == dir + "/bin/../lib/libjkfoo.so.1")
        #expect(result.resolved[rpath]?["libjkfoo.so.1"] == dir + "/bin/../lib/libjkfoo.so.1")
        // ...RUNPATH is not, so libjkbar is not found from the runpath binary.
        #expect(result.missing.contains(.init(needer: dir + "/bin/../lib/libjkfoo.so.1", soname: "libjkbar.so.1")))
        #expect(result.missing.contains(.init(needer: gone, soname: "libjkgone.so")))
        // The image needs the library symlink and the file behind it, with ".." resolved.
        #expect(result.entries.contains(.symlink(dir + "/lib/libjkfoo.so.1", target: "libjkfoo.so.1.0")))
        #expect(result.entries.contains(.file(dir + "/lib/libjkfoo.so.1.0")))

        let oracle = Ldd.run([rpath, runpath, gone, skip])
        for file in [rpath, runpath, gone, skip] {
            let expected = oracle[file] ?? LddReport()
            #expect(result.resolved[file] ?? [:] == expected.resolved, "\(file)")
            #expect(Set((result.missingByInput[file] ?? []).map(\.soname)) == expected.missing, "\(file)")
        }
    }
}
