/// The `[backup]` table of a jail: this jail is an rsync-only backup server whose area
/// lives in `directory` on the host. The volumes the area needs are derived from it
/// (`volumes`), so a spec cannot mount it wrongly (e.g. the snapshots writable).
public struct BackupSpec: Sendable, Equatable, Hashable {
    /// Host directory of the area (absolute): etc/, hosts/, snapshots/, keys/, state/.
    public var directory: String
    /// A host with no successful push for this long raises an alert (seconds).
    public var maxAge: Double = 48 * 3600
    /// Disk use of a host's current/ above which pushes are refused (bytes); nil: none.
    public var quota: UInt64?
    /// Snapshots kept: the newest of each of the last N days, weeks and months.
    public var keepDaily = 7
    public var keepWeekly = 4
    public var keepMonthly = 6

    public init(directory: String) { self.directory = directory }

    /// Where the jail sees the area. The gate (Sources/CBackupGate) has the data and
    /// snapshot roots compiled in: keep them in step.
    public static let configTarget = "/etc/backup"
    public static let dataTarget = "/backups"
    public static let snapshotTarget = "/snapshots"
    public static let privsepTarget = "/run/sshd"

    /// Every mount of the area. Only the hosts' data is writable; the config (sshd's
    /// config, host keys, authorized_keys, the gate), the passwd/group sshd reads and the
    /// snapshots are read-only in the jail, so no key can change them.
    public var volumes: [VolumeSpec] {
        [VolumeSpec(source: directory + "/etc", target: Self.configTarget, readonly: true),
         VolumeSpec(source: directory + "/etc/passwd", target: "/etc/passwd", readonly: true),
         VolumeSpec(source: directory + "/etc/group", target: "/etc/group", readonly: true),
         VolumeSpec(source: directory + "/empty", target: Self.privsepTarget, readonly: true),
         VolumeSpec(source: directory + "/hosts", target: Self.dataTarget, readonly: false),
         VolumeSpec(source: directory + "/snapshots", target: Self.snapshotTarget, readonly: true)]
    }
}
