#if canImport(Glibc)
import Glibc
#endif

/// A volume after validation: the host source and the absolute target inside the jail.
public struct PlannedVolume: Equatable, Sendable {
    public var source: String
    public var target: String
    public var readonly: Bool
    public var isDirectory: Bool
    /// Mounted idmapped through the jail's user namespace (VolumeSpec.idmap).
    public var idmap = false

    public init(source: String, target: String, readonly: Bool, isDirectory: Bool = true, idmap: Bool = false) {
        self.source = source
        self.target = target
        self.readonly = readonly
        self.isDirectory = isDirectory
        self.idmap = idmap
    }
}

/// Computes the mount list of a jail: a pure function of the root, the volumes and the
/// options, golden-tested and printed by `--dry-run`.
public enum MountPlanner {
    /// Device nodes of the jail's /dev, bind-mounted from the host's (mknod would need
    /// CAP_MKNOD, which a user namespace does not grant; a bind works in both cases).
    public static let devices = ["null", "zero", "full", "random", "urandom", "tty"]

    /// The jail's own tmpfs mounts; volume targets below them need no mount point in
    /// the image.
    public static let tmpfsMounts = ["/tmp", "/run", "/dev/shm"]

    public struct Options: Equatable, Sendable {
        public var tmpSize = "64m"
        public var runSize = "16m"
        public var shmSize = "64m"
        /// Extra read-only layer that holds mount points missing from the image; the root
        /// then is an overlay of it over the image instead of a bind of the image.
        public var mountpointLayer: String?
        /// A writable root: overlayfs upper and work directories (readonly_root = false).
        public var writableLayer: (upper: String, work: String)?
        public var tmpExec = false
        public var sys = false
        /// StateRoot.devTemplate, when there is one: bound read-only as /dev.
        public var devTemplate: String?
        /// The monitor's syslog socket, bound on /dev/log (skipped when absent: `run`).
        public var syslog: String?
        public init() {}

        public static func == (a: Options, b: Options) -> Bool {
            a.tmpSize == b.tmpSize && a.runSize == b.runSize && a.shmSize == b.shmSize && a.mountpointLayer == b.mountpointLayer
                && a.writableLayer?.upper == b.writableLayer?.upper && a.writableLayer?.work == b.writableLayer?.work
                && a.tmpExec == b.tmpExec && a.sys == b.sys && a.devTemplate == b.devTemplate && a.syslog == b.syslog
        }
    }

    /// /proc entries that reveal host state: hidden behind /dev/null (files) or an empty
    /// read-only tmpfs (directories), as runc and crun do. Nothing needs hiding for
    /// writes: the whole /proc is mounted read-only (see `plan`).
    public static let maskedFiles = ["/proc/kcore", "/proc/keys", "/proc/timer_list",
                                     "/proc/latency_stats", "/proc/sched_debug", "/proc/kallsyms", "/proc/kpagecount",
                                     "/proc/kpageflags", "/proc/kpagecgroup", "/proc/config.gz"]
    public static let maskedDirectories = ["/proc/acpi", "/proc/scsi", "/proc/driver"]

    public static func plan(root: String, image: String, volumes: [PlannedVolume], options: Options = Options()) -> [MountOp] {
        let nosuidNodev = UInt(MS_NOSUID | MS_NODEV)
        var ops: [MountOp] = []
        let lower = options.mountpointLayer.map { "\($0):\(image)" } ?? image
        if let w = options.writableLayer {
            ops.append(MountOp(.mount, source: "overlay", target: root, fstype: "overlay", flags: nosuidNodev,
                               data: "lowerdir=\(lower),upperdir=\(w.upper),workdir=\(w.work)"))
        } else if options.mountpointLayer != nil {
            // Lower layers only: overlayfs makes such a mount read-only by itself.
            ops.append(MountOp(.mount, source: "overlay", target: root, fstype: "overlay", flags: nosuidNodev,
                               data: "lowerdir=\(lower)"))
        } else {
            ops.append(MountOp(.mount, source: image, target: root, flags: UInt(MS_BIND | MS_REC)))
            ops.append(MountOp(.remount, target: root, flags: UInt(MS_RDONLY) | nosuidNodev))
        }
        let noexecAll = UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC)
        // hidepid=invisible: users of one jail do not see each other's processes.
        // Read-only as a whole: /proc/sys, sysrq-trigger, irq, bus, fs, ... cannot be
        // written even by a uid 0 without a user namespace, in one mount where runc needs
        // a bind and a remount per directory (half of the launch's mount cost). What a
        // service may want to write there (its own oom_score_adj, comm) fails with EROFS,
        // which daemons tolerate.
        ops.append(MountOp(.mount, source: "proc", target: root + "/proc", fstype: "proc", flags: noexecAll | UInt(MS_RDONLY),
                           data: "hidepid=invisible"))
        for f in maskedFiles {
            ops.append(MountOp(.mount, source: "/dev/null", target: root + f, flags: UInt(MS_BIND), optional: true))
        }
        if options.devTemplate == nil {
            for d in maskedDirectories {
                ops.append(MountOp(.mount, source: "tmpfs", target: root + d, fstype: "tmpfs",
                                   flags: noexecAll | UInt(MS_RDONLY), optional: true))
            }
        }
        if options.sys {
            ops.append(MountOp(.mount, source: "sysfs", target: root + "/sys", fstype: "sysfs",
                               flags: noexecAll | UInt(MS_RDONLY)))
        }
        if let template = options.devTemplate {
            // Device nodes of a host filesystem work in a user namespace too (a tmpfs made
            // inside one could hold none); read-only, and nodev stays off for them.
            ops.append(MountOp(.mount, source: template, target: root + "/dev", flags: UInt(MS_BIND)))
            ops.append(MountOp(.remount, target: root + "/dev", flags: UInt(MS_RDONLY | MS_NOSUID | MS_NOEXEC)))
            // Masked /proc directories: binds of the template's empty pts directory, taken
            // before devpts covers it. A bind keeps the read-only, nosuid and noexec of the
            // /dev mount it comes from, and costs no tmpfs superblock made and torn down
            // per mask and launch.
            for d in maskedDirectories {
                ops.append(MountOp(.mount, source: root + "/dev/pts", target: root + d, flags: UInt(MS_BIND), optional: true))
            }
            ops.append(MountOp(.mount, source: "devpts", target: root + "/dev/pts", fstype: "devpts",
                               flags: UInt(MS_NOSUID | MS_NOEXEC), data: "newinstance,ptmxmode=0666,mode=620"))
            ops.append(MountOp(.mount, source: "tmpfs", target: root + "/dev/shm", fstype: "tmpfs",
                               flags: nosuidNodev | UInt(MS_NOEXEC), data: "mode=1777,size=\(options.shmSize)"))
        } else {
            ops.append(MountOp(.mount, source: "tmpfs", target: root + "/dev", fstype: "tmpfs",
                               flags: UInt(MS_NOSUID | MS_NOEXEC), data: "mode=755,size=64k"))
            for dev in devices {
                ops.append(MountOp(.touch, target: root + "/dev/" + dev, mode: 0o666))
                ops.append(MountOp(.mount, source: "/dev/" + dev, target: root + "/dev/" + dev, flags: UInt(MS_BIND)))
            }
            ops.append(MountOp(.mkdir, target: root + "/dev/pts", mode: 0o755))
            ops.append(MountOp(.mount, source: "devpts", target: root + "/dev/pts", fstype: "devpts",
                               flags: UInt(MS_NOSUID | MS_NOEXEC), data: "newinstance,ptmxmode=0666,mode=620"))
            ops.append(MountOp(.symlink, source: "pts/ptmx", target: root + "/dev/ptmx"))
            ops.append(MountOp(.mkdir, target: root + "/dev/shm", mode: 0o1777))
            ops.append(MountOp(.mount, source: "tmpfs", target: root + "/dev/shm", fstype: "tmpfs",
                               flags: nosuidNodev | UInt(MS_NOEXEC), data: "mode=1777,size=\(options.shmSize)"))
            for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                                   ("stderr", "/proc/self/fd/2")]
            {
                ops.append(MountOp(.symlink, source: target, target: root + "/dev/" + name))
            }
            ops.append(MountOp(.touch, target: root + "/dev/log", mode: 0o666))
            // The /dev tmpfs is done: nothing in the jail may add to it.
            ops.append(MountOp(.remount, target: root + "/dev", flags: UInt(MS_RDONLY | MS_NOSUID | MS_NOEXEC)))
        }
        if let socket = options.syslog {
            ops.append(MountOp(.mount, source: socket, target: root + "/dev/log", flags: UInt(MS_BIND), optional: true))
        }
        ops.append(MountOp(.mount, source: "tmpfs", target: root + "/tmp", fstype: "tmpfs",
                           flags: nosuidNodev | (options.tmpExec ? 0 : UInt(MS_NOEXEC)), data: "mode=1777,size=\(options.tmpSize)"))
        ops.append(MountOp(.mount, source: "tmpfs", target: root + "/run", fstype: "tmpfs",
                           flags: nosuidNodev | UInt(MS_NOEXEC), data: "mode=755,size=\(options.runSize)"))
        for v in volumes {
            let target = root + v.target
            if let base = tmpfsMounts.first(where: { v.target.hasPrefix($0 + "/") }) {
                // Below a tmpfs of the jail the mount point is made at launch, inside it.
                var path = root + base
                let parts = v.target.dropFirst(base.count + 1).split(separator: "/")
                for (i, part) in parts.enumerated() {
                    path += "/" + part
                    let last = i == parts.count - 1
                    ops.append(last && !v.isDirectory ? MountOp(.touch, target: path, mode: 0o600)
                                                      : MountOp(.mkdir, target: path, mode: 0o755))
                }
            }
            // One step: the flags are set on the detached copy (every mount of it) before
            // it is attached; the source is opened by the parent (VolumeSources).
            ops.append(MountOp(v.idmap ? .idmappedBind : .volumeBind, source: v.source, target: target,
                               flags: UInt(MS_REC) | nosuidNodev | (v.readonly ? UInt(MS_RDONLY) : 0)))
        }
        return ops
    }
}
