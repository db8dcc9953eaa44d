/// A host directory or file bind-mounted into a jail.
public struct VolumeSpec: Sendable, Equatable, Hashable {
    /// Absolute path on the host, as written.
    public var source: String
    /// Absolute path inside the jail, normalised (no `.`, `..`, `//` or trailing `/`).
    public var target: String
    public var readonly: Bool
    /// `up` makes a missing source directory (and its missing parents, root-owned 0755),
    /// owned by `owner`/`group` as the jail sees them: with `userns`, the host ids they
    /// map to. An existing source is never touched: its data and ownership are the
    /// sysadmin's.
    public var create = false
    public var owner: IDRef?
    public var group: IDRef?
    /// Permission bits of a directory `up` makes.
    public var mode: UInt32 = 0o755
    /// An idmapped mount (userns jails only): the volume's host ids 0-65535 are the
    /// jail's 0-65535 (host root's files are the jail root's, and what the jail's root
    /// writes is host root's), nothing chowned on the host. A directory `create = true`
    /// makes is owned by `owner` as host id, not through the jail's range.
    public var idmap = false

    public init(source: String, target: String, readonly: Bool = false) {
        self.source = source
        self.target = target
        self.readonly = readonly
    }
}
