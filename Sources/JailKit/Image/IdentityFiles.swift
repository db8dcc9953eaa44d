/// The image's own /etc/passwd and /etc/group: root, nobody, and the users its jails run
/// as, never a copy of the host's user list.
public struct IdentityFiles: Sendable, Equatable {
    public struct User: Sendable, Equatable {
        public var name: String
        public var uid: UInt32
        public var gid: UInt32
        public var home: String
        public var shell: String
    }

    public struct Group: Sendable, Equatable {
        public var name: String
        public var gid: UInt32
        public var members: [String]
    }

    public var users: [User]
    public var groups: [Group]

    static let base = IdentityFiles(
        users: [User(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh"),
                User(name: "nobody", uid: 65534, gid: 65534, home: "/nonexistent", shell: "/usr/sbin/nologin")],
        groups: [Group(name: "root", gid: 0, members: []), Group(name: "nogroup", gid: 65534, members: [])])

    /// Root and nobody plus the named users and groups as the host defines them (name,
    /// ids, home, shell only; no password hashes). Names the host does not know are
    /// returned in `unknown` for the caller to report.
    public static func select(users wanted: [String], groups wantedGroups: [String], hostPasswd: String,
                              hostGroup: String) -> (IdentityFiles, unknown: [String])
    {
        var out = base
        var unknown: [String] = []
        let passwd = parse(hostPasswd, fields: 7)
        let group = parse(hostGroup, fields: 4)
        var needGroups: Set<UInt32> = []
        for name in wanted where !out.users.contains(where: { $0.name == name }) {
            guard let f = passwd.first(where: { $0[0] == name }), let uid = UInt32(f[2]), let gid = UInt32(f[3]) else {
                unknown.append(name)
                continue
            }
            out.users.append(User(name: name, uid: uid, gid: gid, home: f[5], shell: f[6]))
            needGroups.insert(gid)
        }
        for f in group {
            guard let gid = UInt32(f[2]) else { continue }
            let wantedByName = wantedGroups.contains(f[0])
            guard needGroups.contains(gid) || wantedByName, !out.groups.contains(where: { $0.gid == gid || $0.name == f[0] }) else { continue }
            let members = f[3].split(separator: ",").map(String.init).filter { m in out.users.contains { $0.name == m } }
            out.groups.append(Group(name: f[0], gid: gid, members: members))
        }
        for name in wantedGroups where !out.groups.contains(where: { $0.name == name }) { unknown.append(name) }
        return (out, unknown)
    }

    static func parse(_ text: String, fields: Int) -> [[String]] {
        text.split(separator: "\n").compactMap { line in
            if line.hasPrefix("#") { return nil }
            let f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            return f.count >= fields ? f : nil
        }
    }

    public var passwd: String {
        users.map { "\($0.name):x:\($0.uid):\($0.gid)::\($0.home):\($0.shell)\n" }.joined()
    }

    public var group: String {
        groups.map { "\($0.name):x:\($0.gid):\($0.members.joined(separator: ","))\n" }.joined()
    }

    /// Resolves a jail's user (and optional group) against these files.
    public func resolve(user: String?, uid: UInt32?, group: String?, gid: UInt32?) -> (uid: UInt32, gid: UInt32, groups: [UInt32], home: String)? {
        var u: User?
        if let user { u = users.first { $0.name == user } } else if let uid { u = users.first { $0.uid == uid } }
        if user != nil && u == nil { return nil }
        let theUid = u?.uid ?? uid ?? 0
        var theGid = u?.gid ?? uid ?? 0
        if let group {
            guard let g = groups.first(where: { $0.name == group }) else { return nil }
            theGid = g.gid
        } else if let gid {
            theGid = gid
        }
        let supplementary = u.map { user in groups.filter { $0.members.contains(user.name) }.map(\.gid) } ?? []
        return (theUid, theGid, supplementary.filter { $0 != theGid }, u?.home ?? "/")
    }
}

extension IdentityFiles {
    /// Reads an image's own passwd and group (the ones ImageBuilder generated).
    static func load(imageRoot: String) -> IdentityFiles {
        let passwd = parse((try? FS.readText(imageRoot + "/etc/passwd")) ?? "", fields: 7)
        let group = parse((try? FS.readText(imageRoot + "/etc/group")) ?? "", fields: 4)
        return IdentityFiles(
            users: passwd.compactMap { f in
                guard let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
                return User(name: f[0], uid: uid, gid: gid, home: f[5], shell: f[6])
            },
            groups: group.compactMap { f in
                guard let gid = UInt32(f[2]) else { return nil }
                return Group(name: f[0], gid: gid, members: f[3].split(separator: ",").map(String.init))
            })
    }
}
