/// A jail's own passwd and group: the image's entries plus the users of its `[[users]]`.
extension IdentityFiles {
    public struct JailUserClash: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The image's users and groups, then each jail user with its ids filled in: a
    /// missing uid is the first free one from 1001 up (free in the image and among the
    /// jail's users), a missing gid a new group of the user's name (gid = uid when free).
    /// A name or id the image already has is a clash: the jail may not redefine an image
    /// user (root, or a user other jails of the image run as).
    public func adding(jailUsers: [JailUserSpec]) throws -> IdentityFiles {
        var out = self
        for user in jailUsers {
            if out.users.contains(where: { $0.name == user.name }) {
                throw JailUserClash(description: "user \(user.name) is already a user of the image")
            }
            if let uid = user.uid, let other = out.users.first(where: { $0.uid == uid }) {
                throw JailUserClash(description: "user \(user.name): uid \(uid) is already user \(other.name) of the image")
            }
        }
        let explicitUids = Set(jailUsers.compactMap(\.uid))
        for user in jailUsers {
            let uid = try user.uid ?? Self.firstFree(from: JailUserSpec.firstDefaultId,
                                                       taken: Set(out.users.map(\.uid)).union(explicitUids), what: "uid for \(user.name)")
            let gid: UInt32
            if let g = user.gid, out.groups.contains(where: { $0.gid == g }) {
                gid = g  // the image's group (or another jail user's) becomes its primary one
            } else {
                if out.groups.contains(where: { $0.name == user.name }) {
                    throw JailUserClash(description: "user \(user.name): the image already has a group \(user.name)")
                }
                let taken = Set(out.groups.map(\.gid)).union(jailUsers.compactMap(\.gid))
                gid = try user.gid ?? (taken.contains(uid) ? Self.firstFree(from: JailUserSpec.firstDefaultId, taken: taken,
                                                                               what: "gid for \(user.name)") : uid)
                out.groups.append(Group(name: user.name, gid: gid, members: []))
            }
            out.users.append(User(name: user.name, uid: uid, gid: gid, home: user.home, shell: user.shell ?? JailUserSpec.noShell))
        }
        return out
    }

    static func firstFree(from start: UInt32, taken: Set<UInt32>, what: String) throws -> UInt32 {
        var id = start
        while taken.contains(id) {
            guard id < JailUserSpec.validIds.upperBound else { throw JailUserClash(description: "no free \(what) left") }
            id += 1
        }
        return id
    }
}
