/// A host directory or file bind-mounted into a jail.
public struct VolumeSpec: Sendable, Equatable, Hashable {
    /// Absolute path on the host, as written.
    public var source: String
    /// Absolute path inside the jail, normalised (no `.`, `..`, `//` or trailing `/`).
    public var target: String
    public var readonly: Bool

    public init(source: String, target: String, readonly: Bool = false) {
        self.source = source
        self.target = target
        self.readonly = readonly
    }
}
