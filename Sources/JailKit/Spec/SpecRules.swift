/// Pure checks on spec values, shared by the schemas.
enum SpecRules {
    /// RFC 1123 label: 1-63 of letters, digits and '-', not starting or ending with '-'.
    static func isValidHostname(_ raw: String) -> Bool {
        let scalars = Array(raw.unicodeScalars)
        guard !scalars.isEmpty, scalars.count <= 63, scalars.first != "-", scalars.last != "-" else {
            return false
        }
        return scalars.allSatisfy(isHostnameScalar)
    }

    private static func isHostnameScalar(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
            || scalar == "-"
    }

    /// The hostname a jail gets when its file sets none. Jail names may hold '_' and end in
    /// '-', which hostnames may not, so those are mapped rather than making the default
    /// itself invalid.
    static func defaultHostname(for jailName: String) -> String {
        if isValidHostname(jailName) { return jailName }
        var mapped = String(jailName.unicodeScalars.map { $0 == "_" ? "-" : Character($0) })
        while mapped.hasSuffix("-") { mapped.removeLast() }
        while mapped.hasPrefix("-") { mapped.removeFirst() }
        return isValidHostname(mapped) ? mapped : "jail"
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`
    /// What the kernel takes as a network interface name (IFNAMSIZ, no '/', ':' or space).
    static func isValidInterfaceName(_ raw: String) -> Bool {
        let bytes = Array(raw.utf8)
        return (1...15).contains(bytes.count) && raw != "." && raw != ".."
            && !bytes.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 32 || $0 == 127 }
    }

    static func isValidEnvKey(_ raw: String) -> Bool {
        let scalars = Array(raw.unicodeScalars)
        guard let first = scalars.first else { return false }
        let isStart = { (s: Unicode.Scalar) in ("a"..."z").contains(s) || ("A"..."Z").contains(s) || s == "_" }
        guard isStart(first) else { return false }
        return scalars.dropFirst().allSatisfy { isStart($0) || ("0"..."9").contains($0) }
    }

    /// User and group names as shadow-utils accepts them: `[a-z_][a-z0-9_.-]*[$]?`, ≤ 32.
    static func isValidAccountName(_ raw: String) -> Bool {
        var scalars = Array(raw.unicodeScalars)
        guard let first = scalars.first, scalars.count <= 32 else { return false }
        guard ("a"..."z").contains(first) || first == "_" else { return false }
        if scalars.last == "$" { scalars.removeLast() }
        return scalars.dropFirst().allSatisfy { s in
            ("a"..."z").contains(s) || ("0"..."9").contains(s) || s == "_" || s == "-" || s == "."
        }
    }

    enum Normalised: Equatable {
        case path(String)
        case relative
        /// `..` climbed above `/`.
        case escapesRoot
    }

    /// Lexical normalisation of an absolute path: drops `.` and empty components, resolves
    /// `..`. Symlinks are not looked at: the path is interpreted inside a jail that does
    /// not exist yet. Climbing above `/` is reported rather than clamped, because a target
    /// like `/srv/../../etc` almost certainly does not mean `/etc`.
    static func normalise(_ raw: String) -> Normalised {
        guard raw.hasPrefix("/") else { return .relative }
        var parts: [Substring] = []
        for component in raw.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".":
                continue
            case "..":
                guard !parts.isEmpty else { return .escapesRoot }
                parts.removeLast()
            default:
                parts.append(component)
            }
        }
        return .path("/" + parts.joined(separator: "/"))
    }

    /// Kernel filesystems the runtime mounts itself; a volume over them would break the jail.
    static let reservedMountPoints = ["/proc", "/dev", "/sys"]

    static func isReserved(_ normalisedTarget: String) -> String? {
        reservedMountPoints.first { normalisedTarget == $0 || normalisedTarget.hasPrefix($0 + "/") }
    }

    /// Glob metacharacters as glob(3) understands them.
    static func isGlob(_ raw: String) -> Bool {
        raw.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    /// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, so
    /// `imgae` is one edit from `image`.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var d = Array(repeating: Array(repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { d[i][0] = i }
        for j in 0...y.count { d[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[x.count][y.count]
    }

    /// The closest candidate, if it is close enough to be a plausible typo.
    static func suggestion(for key: String, among candidates: [String]) -> String? {
        let limit = max(1, min(3, key.count / 3))
        let scored = candidates.map { ($0, editDistance(key.lowercased(), $0)) }
        guard let best = scored.min(by: { ($0.1, $0.0) < ($1.1, $1.0) }), best.1 <= limit else {
            return nil
        }
        return best.0
    }
}
