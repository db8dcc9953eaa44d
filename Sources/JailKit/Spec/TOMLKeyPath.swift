/// A path to a value in a TOML document, rendered as `volumes[1].target` or `env."A B"`.
/// The rendered form is the key of `TOMLSourceMap` and the `field` of diagnostics, so the
/// scanner and the validators must build paths the same way: always through this type.
public struct TOMLKeyPath: Sendable, Hashable, CustomStringConvertible {
    public enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    public private(set) var components: [Component]

    public init(_ components: [Component] = []) {
        self.components = components
    }

    public static let root = TOMLKeyPath()

    public func appending(_ key: String) -> TOMLKeyPath {
        TOMLKeyPath(components + [.key(key)])
    }

    public func appending(index: Int) -> TOMLKeyPath {
        TOMLKeyPath(components + [.index(index)])
    }

    /// The path one level up; the root is its own parent.
    public var parent: TOMLKeyPath {
        TOMLKeyPath(Array(components.dropLast()))
    }

    public var isRoot: Bool { components.isEmpty }

    public var description: String {
        var out = ""
        for component in components {
            switch component {
            case .index(let index):
                out += "[\(index)]"
            case .key(let key):
                if !out.isEmpty { out += "." }
                out += Self.render(key)
            }
        }
        return out
    }

    /// Bare keys print as they are; anything else is quoted the way TOML would accept it,
    /// so a rendered path can be pasted back into a file.
    static func render(_ key: String) -> String {
        let bare = !key.isEmpty && key.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", "_", "-": return true
            default: return false
            }
        }
        if bare { return key }
        var escaped = ""
        for character in key {
            if character == "\\" || character == "\"" { escaped.append("\\") }
            escaped.append(character)
        }
        return "\"\(escaped)\""
    }
}
