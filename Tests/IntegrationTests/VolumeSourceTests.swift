import Glibc
import Testing

@testable import JailKit

/// A jail that can write a volume must not be able to redirect a volume source that
/// lies inside it (its own next start's, or another jail's) onto the host.
@Suite("Volume sources (root)", .serialized)
struct VolumeSourceTests {
    func realPath(ofDescriptor fd: Int32) -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(fd)", &buf, buf.count - 1)
        return n < 0 ? "" : String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test func hostSymlinksAreFollowedButNotThoseInsideWritableVolumes() throws {
        let dir = try TempDir("volsrc")
        defer { dir.remove() }
        try FS.mkdirs(dir.path + "/real/data")
        try FS.mkdirs(dir.path + "/w/sub")
        try FS.mkdirs(dir.path + "/secret")
        #expect(symlink(dir.path + "/real", dir.path + "/hostlink") == 0)
        #expect(symlink(dir.path + "/w", dir.path + "/tow") == 0)
        let roots = [dir.path + "/w"]
        // The sysadmin's own symlink, outside every writable volume: followed.
        var fd = try VolumeSources.open(dir.path + "/hostlink/data", writableRoots: roots)
        #expect(realPath(ofDescriptor: fd) == dir.path + "/real/data")
        close(fd)
        fd = try VolumeSources.open(dir.path + "/w/sub", writableRoots: roots)
        #expect(realPath(ofDescriptor: fd) == dir.path + "/w/sub")
        close(fd)
        // What a jail writing w can do: swap sub for a symlink out of it.
        #expect(rmdir(dir.path + "/w/sub") == 0)
        #expect(symlink(dir.path + "/secret", dir.path + "/w/sub") == 0)
        for path in [dir.path + "/w/sub", dir.path + "/tow/sub"] {
            #expect {
                _ = try VolumeSources.open(path, writableRoots: roots)
            } throws: { error in
                "\(error)".contains("a symlink inside the writable volume \(dir.path)/w")
            }
        }
        // A relative one that stays inside is refused the same way: no symlink at all.
        #expect(unlink(dir.path + "/w/sub") == 0)
        try FS.mkdirs(dir.path + "/w/other")
        #expect(symlink("other", dir.path + "/w/sub") == 0)
        #expect(throws: JailError.self) { _ = try VolumeSources.open(dir.path + "/w/sub", writableRoots: roots) }
    }

    /// Idmapped sources give the jail's root the host root's files: no other host user
    /// may have had a hand in any directory on the way.
    @Test func idmappedSourcesMustBeRootsAllTheWay() throws {
        try requireRoot()
        let dir = try TempDir("volsrc-idmap")
        defer { dir.remove() }
        try FS.mkdirs(dir.path + "/home/user/data")
        var fd = try VolumeSources.open(dir.path + "/home/user/data", writableRoots: [], rootOwned: true)
        close(fd)
        #expect(chown(dir.path + "/home/user", 1000, 1000) == 0)
        #expect {
            _ = try VolumeSources.open(dir.path + "/home/user/data", writableRoots: [], rootOwned: true)
        } throws: { error in
            "\(error)".contains("\(dir.path)/home/user is owned by uid 1000")
        }
        // Not idmapped: the sysadmin's layout is theirs to choose.
        fd = try VolumeSources.open(dir.path + "/home/user/data", writableRoots: [])
        close(fd)
        #expect(chown(dir.path + "/home/user", 0, 0) == 0 && chmod(dir.path + "/home", 0o777) == 0)
        #expect(throws: JailError.self) { _ = try VolumeSources.open(dir.path + "/home/user/data", writableRoots: [], rootOwned: true) }
        #expect(chmod(dir.path + "/home", 0o1777) == 0)
        fd = try VolumeSources.open(dir.path + "/home/user/data", writableRoots: [], rootOwned: true)
        close(fd)
    }

    @Test func aJailCannotRedirectAnotherJailsVolumeOntoTheHost() throws {
        let f = try JailFixture("volsrc-jails")
        defer { f.cleanUp() }
        let share = f.dir.path + "/share"
        try FS.mkdirs(share + "/conf")
        try FS.mkdirs(f.dir.path + "/secret")
        try FS.writeAtomically(f.dir.path + "/secret/key", "host secret\n")
        try f.image("tools", "binaries = [\"/bin/sleep\", \"/bin/sh\", \"/bin/ln\", \"/bin/rmdir\"]")
        try f.jail("writer", """
            image = "tools"
            command = ["/bin/sleep", "3600"]
            stop_signal = "SIGKILL"
            [[volumes]]
            source = "\(share)"
            target = "/share"
            """)
        try f.sleeper("reader", extra: "[[volumes]]\nsource = \"\(share)/conf\"\ntarget = \"/conf\"\nreadonly = true\n")
        _ = try f.manager.up("writer")
        _ = try f.manager.up("reader")
        _ = try f.manager.down("reader")
        // The writer swaps the reader's source for a symlink to a host directory.
        let (code, out) = try f.exec("writer", ["/bin/sh", "-c", "rmdir /share/conf && ln -s \(f.dir.path)/secret /share/conf"])
        #expect(code == 0, "\(out)")
        #expect {
            _ = try f.manager.up("reader")
        } throws: { error in
            "\(error)".contains("volume source \(share)/conf") && "\(error)".contains("symlink inside the writable volume")
        }
        #expect(try f.manager.state.jail("reader")?.state != .running)
        _ = try f.manager.down("writer")
    }
}
