import Testing

@testable import JailKit

/// The backup jail's pure parts: the [backup] table, sshd's files, keys, records of the
/// gate, snapshot names and retention.
@Suite struct BackupTests {
    let header = "image = \"backup\"\ncommand = [\"/usr/sbin/sshd\", \"-D\"]\n"

    func summaries(_ source: String) -> [String] {
        let (_, d) = SpecLoader.parseJail(source: source, file: "Jails/backup.toml", name: "backup")
        return d.map { "\($0.line):\($0.column) \($0.field): \($0.message)" }
    }

    @Test func backupTableDerivesTheAreasMounts() throws {
        let (jail, d) = SpecLoader.parseJail(source: header + """
            userns = true
            [backup]
            directory = "/srv/backup/"
            max_age = "36h"
            quota = "10G"
            keep_daily = 3
            """, file: "Jails/backup.toml", name: "backup")
        #expect(d.isEmpty, "\(d)")
        let j = try #require(jail)
        let spec = try #require(j.backup)
        #expect(spec.directory == "/srv/backup" && spec.maxAge == 36 * 3600 && spec.quota == 10 << 30)
        #expect((spec.keepDaily, spec.keepWeekly, spec.keepMonthly) == (3, 4, 6))
        let volumes = j.volumes
        #expect(volumes.map { "\($0.source) \($0.target) \($0.readonly ? "ro" : "rw")" } == [
            "/srv/backup/etc /etc/backup ro", "/srv/backup/etc/passwd /etc/passwd ro", "/srv/backup/etc/group /etc/group ro",
            "/srv/backup/empty /run/sshd ro", "/srv/backup/hosts /backups rw", "/srv/backup/snapshots /snapshots ro",
        ])
    }

    @Test func backupTableErrorsArePositioned() {
        #expect(summaries(header + "[backup]\ndirectory = \"/srv/b\"\n") == ["3:2 backup: a backup jail needs userns = true"])
        #expect(summaries(header + "userns = true\n[[volumes]]\nsource = \"/x\"\ntarget = \"/backups\"\n[backup]\ndirectory = \"/srv/b\"\n")
                == ["6:10 volumes[0].target: /backups is mounted by [backup] (the backup area)"])
        #expect(summaries(header + "userns = true\n[backup]\ndirectory = \"srv\"\nmax_age = \"2 days\"\nkeep_daily = -1\nquota = \"lots\"\nfoo = 1\n").count == 5)
        #expect(summaries(header + "userns = true\n[backup]\nmax_age = 10\n") == ["4:1 backup.directory: missing required key"]
                || summaries(header + "userns = true\n[backup]\nmax_age = 10\n").first?.contains("directory") == true)
    }

    @Test func durations() {
        #expect(BackupSchema.parseDuration("48h") == 172800)
        #expect(BackupSchema.parseDuration("90m") == 5400)
        #expect(BackupSchema.parseDuration("1.5d") == 129600)
        for bad in ["", "h", "48", "-1h", "1 h", "1y", "nanh"] { #expect(BackupSchema.parseDuration(bad) == nil, "\(bad)") }
    }

    @Test func sshdConfigClosesEverythingButPublicKeysForBackup() {
        let c = BackupFiles.sshdConfig()
        for line in ["UsePAM no", "PermitTTY no", "AllowTcpForwarding no", "AllowStreamLocalForwarding no",
                     "AllowAgentForwarding no", "X11Forwarding no", "PermitTunnel no", "PermitUserEnvironment no",
                     "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin no",
                     "DisableForwarding yes", "AllowUsers backup", "AuthorizedKeysFile /etc/backup/authorized_keys",
                     "PermitUserRC no", "AuthenticationMethods publickey"] {
            #expect(c.contains("\n" + line + "\n"), "\(line)")
        }
        #expect(!c.lowercased().contains("subsystem"))
        // The backup user's shell is the gate; nobody has a real shell.
        #expect(BackupFiles.passwd().contains("backup:x:34:34:backup:/backups:/etc/backup/gate\n"))
        #expect(!BackupFiles.passwd().contains("/bin/sh"))
    }

    @Test func keysAreBoundToTheirHost() throws {
        let key = try PublicKey.parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd1k2n0b2m2Jt4d0tH1JtJmYzKxq9cKpp2r3xq1w2e3 me@web1\n")
        let hosts = [BackupHost(name: "web1", key: key, fingerprint: "SHA256:x", addedAt: 0)]
        #expect(BackupFiles.authorizedKeys(hosts).hasSuffix(
            "restrict,command=\"host web1\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd1k2n0b2m2Jt4d0tH1JtJmYzKxq9cKpp2r3xq1w2e3 jailctl-backup:web1\n"))
        // Options (a client-chosen command, forwarding) never come from the key file.
        for bad in ["command=\"sh\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd1k2n0b2m2Jt4d0tH1", "no-pty ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB",
                    "ssh-ed25519 AAAA\"C3Nza\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd1", "ssh-ed25519 short", "",
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd1k2n0\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd1k2n0"] {
            #expect(throws: JailError.self, "\(bad)") { try PublicKey.parse(bad) }
        }
        #expect(BackupManager.validHost("web-1") && !BackupManager.validHost("Web") && !BackupManager.validHost("../x"))
    }

    @Test func gateRecordsAreHintsParsedStrictly() {
        let r = GateRecord.parse("push 1000 3500 0\npull 4000 4000 23\npush x 1 0\npush 5 1 0\npush 1 2 999\nrm -rf / 1 2\npush 1 2 0 extra\n")
        #expect(r == [GateRecord(pull: false, start: 1, end: 3.5, exit: 0), GateRecord(pull: true, start: 4, end: 4, exit: 23)])
    }

    @Test func snapshotNamesAreUTCStamps() {
        #expect(SnapshotStamp.name(at: 0) == "1970-01-01T0000")
        #expect(SnapshotStamp.name(at: 1_796_015_889) == "2026-11-30T0518")
        #expect(SnapshotStamp.name(at: 1_709_251_140) == "2024-02-29T2359")
        #expect(SnapshotStamp("2026-11-30T0518-2") != nil)
        for bad in ["2026-11-30", "2026-13-01T0000", "2026-11-30T2500", ".tmp-2026-11-30T0518", "2026-11-30T0518-", "x"] {
            #expect(SnapshotStamp(bad) == nil, "\(bad)")
        }
        #expect(SnapshotStamp("2027-01-01T1200")?.isoWeek == "2026-W53")
        #expect(SnapshotStamp("2024-12-30T1200")?.isoWeek == "2025-W1")
        #expect(SnapshotStamp("2026-01-01T1200")?.isoWeek == "2026-W1")
    }

    @Test func retentionKeepsDailyWeeklyMonthly() {
        // Two a day for 60 days (2026-01-01 .. 2026-03-01).
        var names: [String] = []
        for d in 0..<60 {
            let t = 1_767_225_600 + Double(d) * 86400
            names += [SnapshotStamp.name(at: t + 3600), SnapshotStamp.name(at: t + 7200)]
        }
        let policy = SnapshotRetention(daily: 7, weekly: 4, monthly: 6)
        let pruned = Set(policy.prune(names + ["not-a-stamp"]))
        let kept = names.filter { !pruned.contains($0) }.sorted()
        #expect(!pruned.contains("not-a-stamp"))
        // 7 days' newest, then Sundays' (ISO weeks end on Sunday) and months' newest.
        #expect(kept == ["2026-01-31T0200", "2026-02-08T0200", "2026-02-15T0200", "2026-02-22T0200", "2026-02-23T0200",
                         "2026-02-24T0200", "2026-02-25T0200", "2026-02-26T0200", "2026-02-27T0200", "2026-02-28T0200",
                         "2026-03-01T0200"], "\(kept)")
        #expect(SnapshotRetention(daily: 0, weekly: 0, monthly: 0).prune(names).count == names.count - 1)
    }
}
