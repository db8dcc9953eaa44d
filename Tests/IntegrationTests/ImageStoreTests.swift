import Glibc
import Testing

@testable import JailKit

/// The store: identical files of different images are one inode; gc removes versions
/// no image and no running jail uses, and the objects nothing links any more.
@Suite("Image store (root)", .serialized)
struct ImageStoreTests {
    func inode(_ path: String) -> (ino: UInt, links: UInt)? {
        var st = stat()
        return lstat(path, &st) == 0 ? (UInt(st.st_ino), UInt(st.st_nlink)) : nil
    }

    @Test func identicalFilesAreStoredOnceAndGCRemovesWhatNothingUses() throws {
        let f = try JailFixture("store")
        defer { f.cleanUp() }
        try f.image("a", "binaries = [\"/bin/sh\", \"/bin/sleep\", \"/bin/cat\"]")
        try f.image("b", "binaries = [\"/bin/sh\", \"/bin/ls\"]")
        let a1 = try f.manager.build("a")
        let b = try f.manager.build("b")
        let sh = "/usr/bin/dash"
        let inA = try #require(inode(a1.path + sh)), inB = try #require(inode(b.path + sh))
        #expect(inA.ino == inB.ino && inA.links == 3)
        let usage = try f.manager.images.usage()
        let ua = try #require(usage.first { $0.name == "a" })
        #expect(ua.uniqueBytes > 0 && ua.uniqueBytes < ua.bytes)
        // A jail runs on a; a new version of a leaves the old one in use until it stops.
        try f.jail("ja", "image = \"a\"\ncommand = [\"/bin/sleep\", \"3600\"]\nstop_timeout = 0.2")
        _ = try f.manager.up("ja")
        #expect(try f.manager.status(of: "ja")?.state == .running)
        #expect(try f.manager.images.usage().first { $0.name == "a" }?.jails == ["ja"])
        try f.image("a", "binaries = [\"/bin/sh\", \"/bin/sleep\", \"/bin/echo\"]")
        let a2 = try f.manager.build("a")
        #expect(a2.record.hash != a1.record.hash)
        #expect(try f.manager.images.gc().images.isEmpty)
        _ = try f.manager.down("ja")
        let dry = try f.manager.images.gc(dryRun: true)
        #expect(dry.images == [a1.record.hash])
        #expect(FS.exists(a1.path))
        let report = try f.manager.images.gc()
        #expect(report.images == [a1.record.hash] && report.objects == 1)  // cat's
        #expect(!FS.exists(a1.path) && !FS.exists(a1.path + ".manifest"))
        // Shared objects stay; the current versions are whole.
        #expect(inode(a2.path + sh)?.links == 3)
        #expect(FS.exists(a2.path + "/usr/bin/echo") && FS.exists(b.path + "/usr/bin/ls"))
        #expect(try f.manager.images.gc().images.isEmpty)
    }
}
