#if canImport(Glibc)
import Glibc
#endif

/// Which attached jails' links name a jail, so that one jail's firewall change reads the
/// records of the few jails it is linked with instead of every attached jail's
/// (`links/to/<target>/<jail>`, an empty file per link target).
///
/// The files are hints: `up` writes them before the jail's network record, and each is
/// checked against the linking jail's record when read, so one left behind (a crash, a
/// `down` that failed half-way) costs a read and changes nothing. A missing one would
/// leave a link element behind, so the index is used only when `complete` exists: made by
/// a full scan of the attached jails (`rebuild`), which a state root written by an older
/// jailctl gets on its first firewall change.
struct LinkIndex {
    let directory: String

    init(root: StateRoot) { directory = root.path + "/links" }

    var isComplete: Bool { FS.exists(directory + "/complete") }

    /// Before the jail's record is written (see above).
    func record(jail: String, links: [JailLink]) throws {
        for target in Set(links.map(\.jail)) {
            try FS.mkdirs(directory + "/to/" + target, mode: 0o700)
            try FS.writeAtomically(directory + "/to/" + target + "/" + jail, "", mode: 0o600)
        }
    }

    /// After the jail's elements left the table.
    func forget(jail: String, links: [JailLink]) throws {
        for target in Set(links.map(\.jail)) {
            let file = directory + "/to/" + target + "/" + jail
            if unlink(file) != 0 && errno != ENOENT { throw SystemError("unlink \(file)") }
        }
    }

    /// Jails that may link to `target` (hints; see above).
    func linkers(of target: String) throws -> [String] {
        let dir = directory + "/to/" + target
        guard FS.exists(dir) else { return [] }
        return try FS.list(dir)
    }

    /// Hints for every jail of `jails`, then marked complete. Nothing is removed: a jail
    /// attaching meanwhile (not in `jails`) has written its own hints, and those must stay.
    func rebuild(from jails: [NetworkJail]) throws {
        try FS.mkdirs(directory, mode: 0o700)
        for j in jails { try record(jail: j.name, links: j.links) }
        try FS.writeAtomically(directory + "/complete", "", mode: 0o600)
    }
}
