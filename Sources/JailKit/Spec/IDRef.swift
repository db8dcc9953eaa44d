/// A user or group as the spec names it: by name (resolved later against the image's
/// passwd/group files, not the host's) or by numeric id.
public enum IDRef: Sendable, Equatable, Hashable, CustomStringConvertible {
    case name(String)
    case id(UInt32)

    public var description: String {
        switch self {
        case .name(let name): return name
        case .id(let id): return String(id)
        }
    }
}
