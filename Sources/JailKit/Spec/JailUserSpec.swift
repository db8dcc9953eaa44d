/// A user that exists only in one jail (`[[users]]`): the jail sees it in a passwd and
/// group of its own, bound read-only over the image's; the shared image never holds it.
public struct JailUserSpec: Sendable, Equatable, Hashable {
    public var name: String
    /// nil: the first id above 1000 that the image and the jail's other users leave free.
    public var uid: UInt32?
    /// nil: a group of the user's own name (gid = uid when that is free). An id the image
    /// has a group for makes that group the user's primary one.
    public var gid: UInt32?
    /// Inside one of the jail's writable volumes (checked by the schema); `up` makes it,
    /// owned by the user, when it is missing.
    public var home: String
    /// nil: no login shell (`nologin`); else a program that must exist in the image.
    public var shell: String?

    public static let noShell = "/usr/sbin/nologin"
    /// Ids a jail user may take: inside a user namespace's 65536, not root or nobody.
    public static let validIds: ClosedRange<UInt32> = 1...65533
    /// Defaults start above the ids Debian hands out first to people (1000).
    public static let firstDefaultId: UInt32 = 1001

    public init(name: String, uid: UInt32? = nil, gid: UInt32? = nil, home: String, shell: String? = nil) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.shell = shell
    }
}
