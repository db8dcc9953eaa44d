import Glibc
import Testing

@testable import JailKit

/// An object at the file system's hard-link limit is not an error: the entry gets a
/// private copy. Exercised on the real limit (ext4: 65,000 links, about a second).
@Suite struct ObjectStoreTests {
    @Test func objectAtTheLinkLimitGivesAPrivateCopy() throws {
        let dir = try #require(ELFTestSupport.makeTempDirectory())
        defer { ELFTestSupport.removeTree(dir) }
        let objects = try ObjectStore(store: dir)
        defer { objects.close() }
        try FS.mkdirs(dir + "/tree")
        let tree = open(dir + "/tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try #require(tree >= 0)
        defer { close(tree) }
        func tmpFile(_ name: String) throws {
            let fd = openat(objects.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
            try check("create \(name)", fd)
            close(fd)
        }
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        let object = empty + "-444"
        try tmpFile(".tmp-a")
        #expect(try objects.link(".tmp-a", digest: empty, mode: 0o444, into: tree, name: "f0", path: "/f0"))
        unlinkat(objects.fd, ".tmp-a", 0)

        var n = 1
        while linkat(objects.fd, object, tree, "f\(n)", 0) == 0 {
            n += 1
            // No limit this low here (tmpfs, btrfs): nothing to exercise.
            if n > 70_000 { return }
        }
        #expect(errno == EMLINK)

        try tmpFile(".tmp-b")
        var tmp = stat()
        try check("stat .tmp-b", fstatat(objects.fd, ".tmp-b", &tmp, AT_SYMLINK_NOFOLLOW))
        #expect(try !objects.link(".tmp-b", digest: empty, mode: 0o444, into: tree, name: "extra", path: "/extra"))
        var st = stat()
        try check("stat extra", fstatat(tree, "extra", &st, AT_SYMLINK_NOFOLLOW))
        #expect(st.st_ino == tmp.st_ino && st.st_nlink == 2)
    }
}
