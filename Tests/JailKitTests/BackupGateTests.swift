import CBackupGate
import Glibc
import Testing

/// The backup gate's argument check, without root or sshd: exactly the commands rsync's
/// client sends for the supported pushes and pulls are accepted, with the destination
/// forced; everything an attacker with a stolen key would try is refused with a reason.
@Suite("Backup gate arguments")
struct BackupGateTests {
    /// The rsync argv the gate would exec, or the refusal.
    func plan(_ command: String, host: String = "web1") -> Result<[String], GateRefusal> {
        var p = bg_plan()
        var err = [CChar](repeating: 0, count: 512)
        guard bg_plan_command(host, command, &p, &err, err.count) == 0 else {
            return .failure(GateRefusal(reason: String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))
        }
        defer { bg_plan_free(&p) }
        return .success((0..<Int(p.argc)).compactMap { i in bg_plan_arg(&p, Int32(i)).map { String(cString: $0) } })
    }

    struct GateRefusal: Error, Equatable { var reason: String }

    func refused(_ command: String, host: String = "web1") -> String? {
        if case .failure(let r) = plan(command, host: host) { return r.reason }
        return nil
    }

    @Test func pushOfRsyncArchiveDeleteGoesToTheHostsCurrent() throws {
        let argv = try plan("rsync --server -logDtpre.iLsfxCIvu --delete . .").get()
        #expect(argv == ["/usr/bin/rsync", "--server", "-logDtpre.iLsfxCIvu", "--delete", "--munge-links",
                         "--confine-root=/backups/web1/current", "--fake-super", "--drop-D", "--", ".", "/backups/web1/current/"])
        // -z, -H, --stats, --numeric-ids, -v; and "current/" as the destination.
        let full = try plan("rsync --server -vlHogDtprze.iLsfxCIvu --delete --stats --numeric-ids . current/").get()
        #expect(full.last == "/backups/web1/current/")
        #expect(full.contains("--stats") && full.contains("--numeric-ids") && full.contains("--drop-D"))
    }

    @Test func pullReadsOnlyTheHostsOwnCurrentOrSnapshots() throws {
        #expect(try plan("rsync --server --sender -logDtpre.iLsfxCIvu . current/").get().suffix(5)
                == ["--confine-root=/backups/web1/current", "--fake-super", "--", ".", "/backups/web1/current/"])
        #expect(try plan("rsync --server --sender -logDtpre.iLsfxCIvu . .").get().last == "/backups/web1/current/")
        #expect(try plan("rsync --server --sender -logDtpre.iLsfxCIvu . current/etc/a\\ b").get().last
                == "/backups/web1/current/etc/a b")
        let snap = try plan("rsync --server --sender -logDtpre.iLsfxCIvu . snapshots/2026-11-30T0500/srv/").get()
        #expect(snap.suffix(3) == ["--", ".", "/snapshots/web1/2026-11-30T0500/srv/"])
        #expect(snap.contains("--confine-root=/snapshots/web1"))
        #expect(!snap.contains("--drop-D"))
        // Another host's key reads its own area with the same command.
        #expect(try plan("rsync --server --sender -logDtpre.iLsfxCIvu . current/", host: "db").get().last == "/backups/db/current/")
    }

    @Test func shellsAndOtherProgramsAreRefused() {
        for c in ["sh", "sh -c id", "/bin/sh -i", "scp -t .", "scp -f /etc/shadow", "/usr/lib/openssh/sftp-server",
                  "internal-sftp", "rsync", "rsync --daemon --server .", "true", "rsync  --version",
                  "/usr/bin/rsync --server -logDtpre.iLsfxCIvu . ."] {
            #expect(refused(c) != nil, "\(c)")
        }
    }

    @Test func dangerousOptionsAreRefused() {
        let pushes = [
            "rsync --server -slogDtpre.iLsfxCIvu . .",             // secluded args: unchecked paths
            "rsync --server -e ssh . .",
            "rsync --server --rsh=ssh -logDtpre.iLsfxCIvu . .",
            "rsync --server --rsync-path=/bin/sh -logDtpre.iLsfxCIvu . .",
            "rsync --server --daemon . .",
            "rsync --server -logDtpre.iLsfxCIvu --files-from=/etc/passwd . .",
            "rsync --server -logDtpre.iLsfxCIvu --remove-source-files . .",
            "rsync --server -logDtpre.iLsfxCIvu --log-file=/backups/web1/x . .",
            "rsync --server -logDtpre.iLsfxCIvu --temp-dir=/tmp . .",
            "rsync --server -logDtpre.iLsfxCIvu --link-dest=/snapshots/db . .",
            "rsync --server -logDtpre.iLsfxCIvu --backup-dir=../x . .",
            "rsync --server -logDtpre.iLsfxCIvu --inplace . .",
            "rsync --server -logDtpre.iLsfxCIvu --no-munge-links . .",
            "rsync --server -logDtpre.iLsfxCIvu --copy-unsafe-links . .",
            "rsync --server -logDtpre.iLsfxCIvu --keep-dirlinks . .",
            "rsync --server -KlogDtpre.iLsfxCIvu . .",              // -K: follow a planted dir symlink
            "rsync --server -LlogDtpre.iLsfxCIvu . .",
            "rsync --server -blogDtpre.iLsfxCIvu . .",
            "rsync --server -logDtpre.iLsfxCIvu --delete=x . .",
            "rsync --server -logDtpre.iLsfxCIvu --sender . .",
            "rsync --server -logDtpre.iLs;fx . .",
        ]
        for c in pushes { #expect(refused(c) != nil, "\(c)") }
        // --delete makes no sense on the sending side and is not what a restore sends.
        #expect(refused("rsync --server --sender -logDtpre.iLsfxCIvu --delete . current/") != nil)
    }

    @Test func pathsOutsideTheHostsAreaAreRefused() {
        let pulls = ["/etc/shadow", "../db/current/", "current/../../db/current", "current/..", "snapshots/../../etc",
                     "~/x", "~backup/", "current/*", "current/[a]", "other/", "db/current/", "/backups/db/current/",
                     "current/a\nb", "current/x current/../y"]
        for p in pulls { #expect(refused("rsync --server --sender -logDtpre.iLsfxCIvu . \(p)") != nil, "\(p)") }
        // A push names one destination, and only current/ itself.
        for p in ["../x", "current/sub", "snapshots/2026/", "/backups/web1/current", "/tmp", ". .", ""] {
            #expect(refused("rsync --server -logDtpre.iLsfxCIvu --delete . \(p)") != nil, "\(p)")
        }
        // current/ and a snapshot in one restore would need two confinement roots.
        #expect(refused("rsync --server --sender -logDtpre.iLsfxCIvu . current/ snapshots/x/") != nil)
    }

    @Test func hostNamesAreChecked() {
        #expect(bg_valid_host("web-1") == 1)
        for bad in ["", "-x", "Web", "a/b", "..", "a b", String(repeating: "a", count: 33)] {
            #expect(bg_valid_host(bad) == 0, "\(bad)")
            #expect(refused("rsync --server -logDtpre.iLsfxCIvu . .", host: bad) != nil)
        }
    }

    @Test func splittingFollowsTheClientsEscaping() {
        var words = [UnsafeMutablePointer<CChar>?](repeating: nil, count: 8)
        let n = bg_split("rsync  a\\ b c\\\\d \\$x", &words, 8)
        #expect(n == 4)
        let got = words.prefix(Int(max(n, 0))).compactMap { $0.map { String(cString: $0) } }
        #expect(got == ["rsync", "a b", "c\\d", "$x"])
        for w in words { free(w) }
        #expect(bg_split("trailing\\", &words, 8) == -1)
    }
}
