import Testing

@testable import JailKit

@Suite struct IdentityFilesTests {
    let passwd = """
        root:x:0:0:root:/root:/bin/bash
        www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
        alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
        bob:x:1001:1001::/home/bob:/bin/sh
        """
    let group = """
        root:x:0:
        www-data:x:33:
        alice:x:1000:
        bob:x:1001:
        web:x:2000:alice,bob
        """

    @Test func selectsOnlyWhatJailsNeed() {
        let (ids, unknown) = IdentityFiles.select(users: ["alice", "ghost"], groups: ["web"], hostPasswd: passwd, hostGroup: group)
        #expect(unknown == ["ghost"])
        #expect(ids.passwd == """
            root:x:0:0::/root:/bin/sh
            nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin
            alice:x:1000:1000::/home/alice:/bin/bash

            """)
        // bob is a member of web on the host but not a user of the image: not listed.
        #expect(ids.group.contains("web:x:2000:alice\n"))
        #expect(!ids.passwd.contains("bob"))
        #expect(!ids.passwd.contains("www-data"))
    }

    @Test func resolvesUsersGroupsAndNumbers() {
        let (ids, _) = IdentityFiles.select(users: ["alice"], groups: ["web"], hostPasswd: passwd, hostGroup: group)
        let a = ids.resolve(user: "alice", uid: nil, group: nil, gid: nil)
        #expect(a?.uid == 1000 && a?.gid == 1000 && a?.groups == [2000] && a?.home == "/home/alice")
        let g = ids.resolve(user: "alice", uid: nil, group: "web", gid: nil)
        #expect(g?.gid == 2000 && g?.groups == [])
        let n = ids.resolve(user: nil, uid: 4242, group: nil, gid: nil)
        #expect(n?.uid == 4242 && n?.gid == 4242 && n?.home == "/")
        #expect(ids.resolve(user: "ghost", uid: nil, group: nil, gid: nil) == nil)
        #expect(ids.resolve(user: "alice", uid: nil, group: "nope", gid: nil) == nil)
    }
}
