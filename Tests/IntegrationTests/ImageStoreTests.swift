import Foundation
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

    /// Runs `body` on a thread of its own; `finished` says whether it has returned.
    /// Unchecked: `result` is behind `mutex`; what `body` uses is the state database
    /// (safe across threads) and files the test thread only reads.
    final class Background: @unchecked Sendable {
        private let body: () throws -> String
        private let done = DispatchSemaphore(value: 0)
        private let mutex = NSLock()
        private var result: Result<String, any Error>?

        init(_ body: @escaping () throws -> String) {
            self.body = body
            Thread { self.run() }.start()
        }

        private func run() {
            let r = Result { try body() }
            mutex.withLock { result = r }
            done.signal()
        }

        var finished: Bool { mutex.withLock { result != nil } }

        func wait(seconds: Double) -> Result<String, any Error>? {
            guard done.wait(timeout: .now() + seconds) == .success else { return nil }
            return mutex.withLock { result }
        }
    }

    /// Takes the store lock as a build (shared) or as gc (exclusive) would.
    func holdStoreLock(_ f: JailFixture, _ operation: Int32) throws -> Int32 {
        let fd = open(f.manager.root.store + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        try check("open store lock", fd)
        try check("flock store lock", flock(fd, operation))
        return fd
    }

    @Test func gcWaitsForARunningBuild() throws {
        let f = try JailFixture("store-gc-lock")
        defer { f.cleanUp() }
        _ = try f.manager.build("probe")
        // A build in flight: its object under a temporary name, the store lock shared.
        let objects = f.manager.root.store + "/" + ObjectStore.directory
        let inFlight = objects + "/.tmp-1-1"
        try FS.writeAtomically(inFlight, "x")
        let build = try holdStoreLock(f, LOCK_SH)
        let images = f.manager.images
        let gc = Background { "\(try images.gc().objects)" }
        usleep(500_000)
        #expect(!gc.finished)
        #expect(FS.exists(inFlight))
        close(build)
        // With the build gone, the left-over temporary object is gc's to remove.
        let report = try #require(gc.wait(seconds: 30))
        #expect(try report.get() == "1")
        #expect(!FS.exists(inFlight))
    }

    @Test func buildWaitsForGC() throws {
        let f = try JailFixture("store-build-lock")
        defer { f.cleanUp() }
        try f.image("a", "binaries = [\"/bin/sh\"]")
        let gc = try holdStoreLock(f, LOCK_EX)
        let manager = f.manager
        let build = Background { try manager.build("a").record.hash }
        usleep(500_000)
        #expect(!build.finished)
        #expect(try FS.list(f.manager.root.store).filter { $0.hasPrefix(".build-") }.isEmpty)
        #expect(try f.manager.state.image("a") == nil)
        close(gc)
        let hash = try #require(build.wait(seconds: 60)).get()
        #expect(try f.manager.state.image("a")?.hash == hash)
        #expect(FS.isDirectory(f.manager.root.store + "/" + hash))
    }

    @Test func usageReportsAnUnreadableManifest() throws {
        let f = try JailFixture("store-usage")
        defer { f.cleanUp() }
        let built = try f.manager.build("probe")
        try check("unlink manifest", unlink(built.path + ".manifest"))
        #expect(throws: JailError.self) { _ = try f.manager.images.usage() }
    }

    /// `up` resolves the image version and launches it before its record names it: a
    /// rebuild and a gc in that window (run from the test hook, deterministically) must
    /// not remove the version, and do when the pin is taken away (the race is real).
    @Test func gcKeepsTheVersionAStartingJailResolved() throws {
        let f = try JailFixture("store-up-race")
        defer { f.cleanUp() }
        try f.image("a", "binaries = [\"/bin/sh\", \"/bin/sleep\"]")
        try f.jail("ja", "image = \"a\"\ncommand = [\"/bin/sleep\", \"3600\"]\nstop_timeout = 0.2")
        let old = try f.manager.build("a").record.hash
        let manager = f.manager
        let image = { (binaries: String) in try f.image("a", "binaries = [\(binaries)]") }
        var removed: [String] = []
        manager.testHookImageResolved = { _ in
            #expect(try manager.state.imagePins().map(\.hash) == [old])
            try image("\"/bin/sh\", \"/bin/sleep\", \"/bin/echo\"")
            _ = try manager.build("a")
            removed = try manager.images.gc().images
        }
        let up = try f.manager.up("ja")
        #expect(removed.isEmpty)
        #expect(up.status.state == .running && up.status.imageHash == old)
        #expect(FS.isDirectory(f.manager.root.store + "/" + old))
        // The record holds the version from here on; the pin is gone.
        #expect(try f.manager.state.imagePins().isEmpty)
        #expect(try f.manager.images.gc().images.isEmpty)
        _ = try f.manager.down("ja")
        #expect(try f.manager.images.gc().images == [old])

        // Control: with the pin taken away in the window, gc removes the version the
        // jail is about to mount, and the launch fails.
        let current = try #require(try f.manager.state.image("a")).hash
        manager.testHookImageResolved = { _ in
            for pin in try manager.state.imagePins() { try manager.state.delete(pin) }
            try image("\"/bin/sh\", \"/bin/sleep\"")
            _ = try manager.build("a")
            removed = try manager.images.gc().images
        }
        #expect(throws: JailError.self) { try f.manager.up("ja") }
        #expect(removed == [current])
        manager.testHookImageResolved = nil
    }

    /// A pin left by an `up` that was killed (its pid gone, or reused by another process)
    /// keeps nothing: gc removes the version and the pin.
    @Test func aPinOfAGoneProcessHoldsNothing() throws {
        let f = try JailFixture("store-stale-pin")
        defer { f.cleanUp() }
        try f.image("a", "binaries = [\"/bin/sh\"]")
        let old = try f.manager.build("a").record.hash
        try f.image("a", "binaries = [\"/bin/sh\", \"/bin/cat\"]")
        _ = try f.manager.build("a")
        // A real process that has ended, and this live process with a wrong start time.
        var gone: pid_t = 0
        let argv = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        try #require(posix_spawn(&gone, "/bin/true", nil, nil, argv, environ) == 0)
        var status: Int32 = 0
        waitpid(gone, &status, 0)
        try f.manager.state.save(ImagePin(jail: "killed", hash: old, pid: gone, startTime: 1))
        try f.manager.state.save(ImagePin(jail: "reused", hash: old, pid: getpid(), startTime: 1))
        #expect(try f.manager.images.gc(dryRun: true).images == [old])
        #expect(try f.manager.state.imagePins().count == 2)
        #expect(try f.manager.images.gc().images == [old])
        #expect(try f.manager.state.imagePins().isEmpty)
        // A pin of a live process does keep its version.
        let current = try #require(try f.manager.state.image("a")).hash
        try f.image("a", "binaries = [\"/bin/sh\"]")
        _ = try f.manager.build("a")
        try f.manager.state.save(ImagePin.own(jail: "live", hash: current))
        #expect(try f.manager.images.gc().images.isEmpty)
    }

    /// The resolution waits for a running gc (the store lock), so gc never sees a
    /// version resolved but not yet pinned.
    @Test func upWaitsForGC() throws {
        let f = try JailFixture("store-up-lock")
        defer { f.cleanUp() }
        try f.sleeper("s")
        _ = try f.manager.build("probe")
        let gc = try holdStoreLock(f, LOCK_EX)
        let manager = f.manager
        let up = Background { try manager.up("s").status.imageHash }
        usleep(500_000)
        #expect(!up.finished)
        #expect(try f.manager.state.imagePins().isEmpty)
        close(gc)
        let hash = try #require(up.wait(seconds: 60)).get()
        #expect(hash == (try f.manager.state.image("probe"))?.hash)
        _ = try f.manager.down("s")
    }

    /// `jailctl run` has no record while its jail runs in the foreground: its pin keeps
    /// the version for the whole run, and goes with it.
    @Test func aForegroundRunPinsItsVersionUntilItEnds() throws {
        let f = try JailFixture("store-run-pin")
        defer { f.cleanUp() }
        try f.image("a", "binaries = [\"/bin/sh\", \"/bin/sleep\"]")
        try f.jail("fg", "image = \"a\"\ncommand = [\"/bin/sleep\", \"2\"]")
        let old = try f.manager.build("a").record.hash
        let manager = f.manager
        let run = Background { "\(try manager.runForeground("fg", stdio: .init(stdin: -1, stdout: -1, stderr: -1)))" }
        var waited = 0
        while try f.manager.state.imagePins().isEmpty && waited < 100 {
            usleep(20_000)
            waited += 1
        }
        #expect(try f.manager.state.imagePins().map(\.hash) == [old])
        try f.image("a", "binaries = [\"/bin/sh\", \"/bin/sleep\", \"/bin/echo\"]")
        _ = try f.manager.build("a")
        #expect(try f.manager.images.gc().images.isEmpty)
        #expect(try #require(run.wait(seconds: 30)).get() == "0")
        #expect(try f.manager.state.imagePins().isEmpty)
        #expect(try f.manager.images.gc().images == [old])
    }
}
