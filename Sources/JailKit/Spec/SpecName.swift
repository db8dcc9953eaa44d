/// The name of an image or jail, taken from its file name.
///
/// Hook for templates: a later `name@instance` form (one file `web@.toml`, many jails
/// `web@1`, `web@2`) will parse into `base` plus `instance` here. Until then `@` is refused
/// with a message saying so, instead of a generic "invalid name".
public struct SpecName: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var base: String
    /// Always nil until templates exist.
    public var instance: String?

    public static let validDescription =
        "a name is 1-31 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"

    /// `nil` plus a reason when `raw` is not a usable name.
    public static func parse(_ raw: String) -> (name: SpecName?, problem: String?) {
        if raw.contains("@") {
            return (nil, "\"\(raw)\" is a template name (name@instance); templates are not supported yet")
        }
        guard isValidBase(raw) else {
            return (nil, "\"\(raw)\" is not a valid name")
        }
        return (SpecName(base: raw, instance: nil), nil)
    }

    /// `[a-z0-9][a-z0-9_-]{0,30}`
    public static func isValidBase(_ raw: String) -> Bool {
        let scalars = Array(raw.unicodeScalars)
        guard let first = scalars.first, scalars.count <= 31 else { return false }
        guard ("a"..."z").contains(first) || ("0"..."9").contains(first) else { return false }
        return scalars.dropFirst().allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-"
        }
    }

    public var description: String {
        instance.map { "\(base)@\($0)" } ?? base
    }
}
