#if canImport(Glibc)
import Glibc
#endif

/// Users a jail spec defines for that jail only (`[[users]]`): a passwd and group of the
/// jail's own under its run directory, bound read-only over the image's, and their homes
/// made in the jail's volumes.
extension JailManager {
    /// The image's passwd and group plus the jail's own users; the image's alone when the
    /// spec has none. A clash with the image or a shell the image lacks refuses the jail.
    func jailIdentity(_ spec: JailSpec, imageRoot: String) throws -> IdentityFiles {
        let image = IdentityFiles.load(imageRoot: imageRoot)
        guard !spec.users.isEmpty else { return image }
        for u in spec.users {
            if let shell = u.shell, !ImageFS.isExecutable(shell, imageRoot: imageRoot) {
                throw JailError(.invalidSpec, "jail \(spec.name) (\(spec.file)): users \(u.name): shell \(shell) is not an executable file in image \(spec.image)")
            }
        }
        do {
            return try image.adding(jailUsers: spec.users)
        } catch let clash as IdentityFiles.JailUserClash {
            throw JailError(.invalidSpec, "jail \(spec.name) (\(spec.file)): users: \(clash.description) \(spec.image); pick another name or id")
        }
    }

    /// run/<jail>/passwd and group, mounted over the image's /etc/passwd and /etc/group
    /// (the same way as a private jail's /etc/hosts), and shadow when the image has one
    /// (for pam_unix: locked entries, the jail's users included).
    func identityFiles(_ spec: JailSpec, imageRoot: String) -> [(source: String, target: String)] {
        guard !spec.users.isEmpty else { return [] }
        let run = root.jailRun(spec.name)
        var files = [(run + "/passwd", "/etc/passwd"), (run + "/group", "/etc/group")]
        if case .file = ImageFS.lookup("/etc/shadow", imageRoot: imageRoot) { files.append((run + "/shadow", "/etc/shadow")) }
        return files
    }

    func writeIdentityFiles(_ spec: JailSpec, prepared: Prepared) throws {
        guard let ids = prepared.identity else { return }
        for (source, target) in identityFiles(spec, imageRoot: prepared.image.path) {
            // In place: once mounted, the mount holds the inode.
            switch target {
            case "/etc/passwd": try FS.writeInPlace(source, ids.passwd, mode: 0o644)
            case "/etc/group": try FS.writeInPlace(source, ids.group, mode: 0o644)
            default:
                // As readable as the image's own (the jail's users read it through PAM).
                var st = stat()
                try check("stat the image's /etc/shadow", lstat(prepared.image.path + "/etc/shadow", &st))
                try FS.writeInPlace(source, PAMRule.lockedShadow(passwd: ids.passwd), mode: st.st_mode & 0o444)
            }
        }
    }

    /// The writable volume a path inside the jail lies in (the deepest target).
    static func volume(holding path: String, in volumes: [VolumeSpec]) -> VolumeSpec? {
        volumes.filter { !$0.readonly && (path == $0.target || path.hasPrefix($0.target + "/")) }
            .max { $0.target.count < $1.target.count }
    }

    /// Makes each jail user's missing home in its volume, owned by the user (through the
    /// id map) and 0750. The volume is the jail's to write, so nothing below its source
    /// is trusted: every step is opened without following links, and an existing home
    /// is left as it is. What this makes goes again when `up` fails.
    func makeHomes(_ spec: JailSpec, prepared: Prepared, idMap: (base: UInt32, size: UInt32)?, undo: inout Rollback) throws {
        guard let ids = prepared.identity else { return }
        for u in spec.users {
            guard let v = Self.volume(holding: u.home, in: spec.volumes), u.home != v.target,
                  let user = ids.users.first(where: { $0.name == u.name }) else { continue }
            let base = Self.hostIdBase(of: v, idMap: idMap)
            let parts = u.home.dropFirst(v.target.count + 1).split(separator: "/").map(String.init)
            var dir = open(v.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir < 0 { throw SystemError("open \(v.source)") }
            defer { close(dir) }
            var path = v.source
            for (i, part) in parts.enumerated() {
                path += "/" + part
                let last = i == parts.count - 1
                var created = false
                if mkdirat(dir, part, last ? 0o700 : 0o755) == 0 {
                    created = true
                    let made = path, source = v.source, steps = Array(parts[0...i])
                    undo.add("remove the home directory \(made)") { try Self.removeMadeDirectory(steps, below: source) }
                } else if errno != EEXIST {
                    throw SystemError("mkdir \(path)")
                }
                let next = openat(dir, part, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
                if next < 0 { throw SystemError("open \(path) (a link or not a directory?)") }
                close(dir)
                dir = next
                guard created else { continue }
                // Parents the jail did not have yet belong to its root, the home to the user.
                let (uid, gid) = last ? (user.uid, user.gid) : (0, 0)
                try check("chown \(path)", fchown(dir, base + uid, base + gid))
                try check("chmod \(path)", fchmod(dir, last ? 0o750 : 0o755))
            }
        }
    }

    /// Removes the (empty) directory `steps` below a volume's source, walking as
    /// `makeHomes` made it, without following links: a jail that swapped a parent for a
    /// symlink meanwhile makes this fail, never remove a directory elsewhere.
    static func removeMadeDirectory(_ steps: [String], below source: String) throws {
        guard let last = steps.last else { return }
        var dir = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir < 0 { throw SystemError("open \(source)") }
        defer { close(dir) }
        for part in steps.dropLast() {
            let next = openat(dir, part, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            if next < 0 { throw SystemError("open \(source)/\(part) (a link or not a directory?)") }
            close(dir)
            dir = next
        }
        if unlinkat(dir, last, AT_REMOVEDIR) != 0 && errno != ENOENT {
            throw SystemError("rmdir \(source)/\(steps.joined(separator: "/"))")
        }
    }

    /// The host id of the jail's id 0 on files of volume `v`: the id map's base, or 0
    /// where the volume is mounted without translation.
    static func hostIdBase(of v: VolumeSpec, idMap: (base: UInt32, size: UInt32)?) -> UInt32 {
        v.idmap ? 0 : idMap?.base ?? 0
    }
}
