#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

/// One step of a jail's filesystem set-up, as data: the C launcher runs the list in
/// order inside the new mount namespace, before pivot_root. Paths are host paths below
/// the new root; `description` prints them as the jail will see them.
public struct MountOp: Equatable, Sendable {
    /// `volumeBind` and `idmappedBind`: the parent opens `source` (`VolumeSources`),
    /// makes a detached copy of it with `flags` (idmapped through the jail's user
    /// namespace for the latter), and the child moves that copy onto `target`.
    public enum Kind: Int32, Sendable {
        case mount = 1, mkdir = 2, touch = 3, symlink = 4, remount = 5, idmappedBind = 6, volumeBind = 7

        /// Carried out by moving a mount the parent sent.
        public var isDetachedBind: Bool { self == .idmappedBind || self == .volumeBind }
        /// The C launcher's step.
        var cKind: Int32 { isDetachedBind ? Int32(JL_OP_MOVE_MOUNT.rawValue) : rawValue }
    }

    public var kind: Kind
    public var source: String?
    public var target: String
    public var fstype: String?
    public var flags: UInt
    public var data: String?
    public var mode: UInt32
    /// Skipped when the target does not exist (a /proc entry this kernel lacks).
    public var optional: Bool

    public init(_ kind: Kind, source: String? = nil, target: String, fstype: String? = nil, flags: UInt = 0,
                data: String? = nil, mode: UInt32 = 0, optional: Bool = false)
    {
        self.optional = optional
        self.kind = kind
        self.source = source
        self.target = target
        self.fstype = fstype
        self.flags = flags
        self.data = data
        self.mode = mode
    }

    /// How the step reads in `--dry-run` output and in error messages, with the jail's
    /// root shown as "/".
    public func describe(root: String) -> String {
        let t = MountOp.inside(target, root: root)
        let opts = MountOp.flagNames(flags) + (data.map { [$0] } ?? [])
        let o = (opts.isEmpty ? "" : " (" + opts.joined(separator: ",") + ")") + (optional ? " if present" : "")
        switch kind {
        case .mount:
            if (flags & UInt(MS_BIND)) != 0 {
                return "bind \(source ?? "?") on \(t)\(o)"
            }
            return "mount \(fstype ?? "?") on \(t)\(o)"
        case .idmappedBind:
            return "bind \(source ?? "?") on \(t) (" + (["idmapped"] + MountOp.flagNames(flags)).joined(separator: ",") + ")"
        case .volumeBind:
            return "bind \(source ?? "?") on \(t) (" + MountOp.flagNames(flags).joined(separator: ",") + ")"
        case .remount: return "remount \(t)\(o)"
        case .mkdir: return "mkdir \(t) mode \(String(mode, radix: 8))"
        case .touch: return "create \(t) mode \(String(mode, radix: 8))"
        case .symlink: return "symlink \(t) -> \(source ?? "?")"
        }
    }

    static func inside(_ path: String, root: String) -> String {
        if path == root { return "/" }
        if path.hasPrefix(root + "/") { return String(path.dropFirst(root.count)) }
        return path
    }

    static func flagNames(_ flags: UInt) -> [String] {
        let names: [(Int, String)] = [
            (Int(MS_RDONLY), "ro"), (Int(MS_NOSUID), "nosuid"), (Int(MS_NODEV), "nodev"),
            (Int(MS_NOEXEC), "noexec"), (Int(MS_REC), "rec"),
        ]
        return names.filter { (flags & UInt($0.0)) != 0 }.map(\.1)
    }
}
