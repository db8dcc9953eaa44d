/// The name of an image or jail, taken from its file name.
///
/// A jail name is either plain (`web`) or an instance of a template (`php-tenant@alice`:
/// `base` "php-tenant", `instance` "alice"). A template's own file is `base@.toml`
/// (`instance` empty, `isTemplate`). Both parts follow the same rule, so an instance name
/// is safe wherever a jail name goes: file names under run/, logs/ and locks/, cgroup
/// directories, the supervisor's control messages. Nothing kernel-visible is derived from
/// it beyond those (veth names are random per launch, nft elements are addresses).
public struct SpecName: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var base: String
    /// nil: a plain name; "": the template itself (`base@`); else the instance.
    public var instance: String?

    public static let validDescription =
        "a name is 1-31 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
    public static let instanceDescription =
        "an instance of a template is BASE@INSTANCE, both parts 1-31 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"

    public var isTemplate: Bool { instance == "" }
    public var isInstance: Bool { instance.map { !$0.isEmpty } ?? false }

    /// `nil` plus a reason when `raw` is not a usable jail name (plain or instance).
    /// Template file names (`base@`) are refused here: see `parseFileName`.
    public static func parse(_ raw: String) -> (name: SpecName?, problem: String?) {
        let (name, problem) = parseFileName(raw)
        if let name, name.isTemplate {
            return (nil, "\"\(raw)\" is a template (name@); an instance names what comes after the @, e.g. \"\(raw)example\"")
        }
        return (name, problem)
    }

    /// A plain name only (images, which have no templates).
    public static func parsePlain(_ raw: String) -> (name: SpecName?, problem: String?) {
        if raw.contains("@") { return (nil, "\"\(raw)\" contains '@'; only jails have templates and instances") }
        return parse(raw)
    }

    /// Also accepts `base@`, the name of a template file.
    public static func parseFileName(_ raw: String) -> (name: SpecName?, problem: String?) {
        let parts = raw.split(separator: "@", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1:
            guard isValidBase(raw) else { return (nil, "\"\(raw)\" is not a valid name") }
            return (SpecName(base: raw, instance: nil), nil)
        case 2:
            guard isValidBase(parts[0]) else { return (nil, "\"\(raw)\": \"\(parts[0])\" is not a valid template name") }
            if parts[1].isEmpty { return (SpecName(base: parts[0], instance: ""), nil) }
            guard isValidBase(parts[1]) else { return (nil, "\"\(raw)\": \"\(parts[1])\" is not a valid instance name") }
            return (SpecName(base: parts[0], instance: parts[1]), nil)
        default:
            return (nil, "\"\(raw)\" has more than one '@'")
        }
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
