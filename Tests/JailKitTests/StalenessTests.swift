import Glibc
import Testing

@testable import JailKit

/// Staleness on a test-made private copy of a binary: build, change the source, and the
/// check names exactly that file; a touch without a content change is not a change.
@Suite struct StalenessTests {
    @Test func changedSourceIsNamed() throws {
        guard let dir = ELFTestSupport.makeTempDirectory() else { throw JailError(.system, "no temp dir") }
        defer { ELFTestSupport.removeTree(dir) }
        let bin = dir + "/true-copy"
        let conf = dir + "/app.conf"
        #expect(ELFTestSupport.run("cp /bin/true \(bin) && echo a=1 > \(conf)").status == 0)
        try FS.mkdirs(dir + "/store")
        let spec = ImageSpec(name: "t", file: conf, binaries: [bin], files: [conf])
        let plan = try ImageBuilder.host().plan(spec)
        let result = try ImageWriter().write(plan, store: dir + "/store")
        #expect(Staleness.check(manifest: result.manifest) == [])

        // Same content, new mtime: fingerprints differ, hashes agree: not stale.
        #expect(ELFTestSupport.run("touch -d '2001-01-01' \(bin)").status == 0)
        #expect(Staleness.check(manifest: result.manifest) == [])

        #expect(ELFTestSupport.run("printf x >> \(bin)").status == 0)
        let changed = Staleness.check(manifest: result.manifest)
        #expect(changed == [ChangedSource(source: bin, imagePath: bin, change: .modified)])

        #expect(ELFTestSupport.run("rm \(conf)").status == 0)
        let after = Staleness.check(manifest: result.manifest).map(\.change)
        // The conf file is both a copied file and the (pretend) spec file input.
        #expect(after == [.missing, .modified, .missing])
    }

    @Test func parametersAreCompared() {
        let manifest = "p\tgroups\t\np\tusers\tnobody,www\n"
        #expect(Staleness.check(manifest: manifest, parameters: ["users": "nobody,www", "groups": ""]) == [])
        #expect(Staleness.check(manifest: manifest, parameters: ["users": "www", "groups": ""]).map(\.source) == ["users"])
        #expect(Staleness.check(manifest: manifest) == [])
    }

    @Test func directoryInputSeesNewEntries() throws {
        guard let dir = ELFTestSupport.makeTempDirectory() else { throw JailError(.system, "no temp dir") }
        defer { ELFTestSupport.removeTree(dir) }
        let confd = dir + "/conf.d"
        try FS.mkdirs(confd)
        guard let fp = SourceFingerprint(path: confd) else { throw JailError(.system, "lstat") }
        let manifest = "i\t\(confd)\t\(fp.size)\t\(try fp.digest(of: confd))\t\(fp.origin)\n"
        #expect(Staleness.check(manifest: manifest) == [])
        #expect(ELFTestSupport.run("touch \(confd)/20-new.ini").status == 0)
        #expect(Staleness.check(manifest: manifest).map(\.change) == [.modified])
    }

    /// A rebuild links a source whose fingerprint (device, inode, size, mtime, mode) did
    /// not move to its stored object without reading it; one whose fingerprint moved is
    /// read again. Shown with a content change hidden behind a restored mtime (which
    /// only the source's owner can do): the reused object keeps the old content.
    @Test func rebuildReadsOnlyMovedFingerprints() throws {
        guard let dir = ELFTestSupport.makeTempDirectory() else { throw JailError(.system, "no temp dir") }
        defer { ELFTestSupport.removeTree(dir) }
        let a = dir + "/a.conf", b = dir + "/b.conf"
        #expect(ELFTestSupport.run("echo one > \(a) && echo two > \(b) && touch -d '2001-01-01' \(a)").status == 0)
        try FS.mkdirs(dir + "/store")
        let plan = try ImageBuilder.host().plan(ImageSpec(name: "t", file: a, files: [a, b]))
        let first = try ImageWriter().write(plan, store: dir + "/store")
        // a: same size and mtime, other content; b: new content and mtime.
        #expect(ELFTestSupport.run("echo ONE > \(a) && touch -d '2001-01-01' \(a) && echo three > \(b)").status == 0)
        var writer = ImageWriter()
        writer.known = ImageWriter.knownSources(manifest: first.manifest)
        #expect(writer.known[a] != nil && writer.known[b] != nil)
        let second = try writer.write(plan, store: dir + "/store")
        #expect(try FS.readText(second.path + a) == "one\n")
        #expect(try FS.readText(second.path + b) == "three\n")
        // Without the record every file is read.
        let third = try ImageWriter().write(plan, store: dir + "/store")
        #expect(try FS.readText(third.path + a) == "ONE\n")
    }
}
