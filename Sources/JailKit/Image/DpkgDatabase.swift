#if canImport(Glibc)
import Glibc
#endif

/// Debian's package database, read natively: the status file and the per-package file
/// lists under `info/`. No dpkg-query: its output format is configurable by the admin
/// and running it per package would cost a process each.
public struct DpkgDatabase: Sendable {
    public struct Package: Sendable, Equatable {
        public var name: String
        public var architecture: String
        public var status: String
        public var version: String

        /// "install ok installed", and the trigger states that are installed all the same.
        public var isInstalled: Bool {
            let state = status.split(separator: " ").last.map(String.init) ?? ""
            return ["installed", "triggers-pending", "triggers-awaited"].contains(state)
        }
    }

    public static let defaultDirectory = "/var/lib/dpkg"

    public let directory: String
    /// By name; a Multi-Arch package may be present for several architectures.
    public let packages: [String: [Package]]

    public init(directory: String = DpkgDatabase.defaultDirectory) throws {
        self.directory = directory
        let text = try FS.readText(directory + "/status")
        var byName: [String: [Package]] = [:]
        for p in Self.parseStatus(text) { byName[p.name, default: []].append(p) }
        packages = byName
    }

    /// Paragraphs of `Field: value` lines; continuation lines (leading space) belong to
    /// multi-line fields such as Conffiles and Description, which are not needed here.
    public static func parseStatus(_ text: String) -> [Package] {
        var out: [Package] = []
        var current: [Substring: Substring] = [:]
        func flush() {
            if let name = current["Package"] {
                out.append(Package(name: String(name), architecture: String(current["Architecture"] ?? ""),
                                   status: String(current["Status"] ?? ""), version: String(current["Version"] ?? "")))
            }
            current = [:]
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty {
                flush()
                continue
            }
            guard let first = line.first, first != " ", first != "\t", let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            guard ["Package", "Status", "Architecture", "Version"].contains(key) else { continue }
            current[key] = line[line.index(after: colon)...].drop(while: { $0 == " " })
        }
        flush()
        return out
    }

    public enum Lookup: Sendable, Equatable {
        case installed(Package)
        case notInstalled(Package)
        case unknown
    }

    /// `name` or `name:arch`.
    public func lookup(_ spec: String) -> Lookup {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        let name = parts.first ?? spec
        let arch = parts.count > 1 ? parts[1] : nil
        let candidates = (packages[name] ?? []).filter { arch == nil || $0.architecture == arch }
        if let p = candidates.first(where: \.isInstalled) { return .installed(p) }
        if let p = candidates.first { return .notInstalled(p) }
        return .unknown
    }

    /// The `info/*.list` file of an installed package: `name:arch.list` for Multi-Arch:
    /// same packages, `name.list` otherwise.
    public func listFile(of p: Package) -> String? {
        let candidates = [directory + "/info/\(p.name):\(p.architecture).list", directory + "/info/\(p.name).list"]
        return candidates.first(where: FS.exists)
    }

    /// Every path the package installed, in the order dpkg lists them.
    public func files(of p: Package) throws -> (list: String, paths: [String]) {
        guard let list = listFile(of: p) else {
            throw JailError(.image, "package \(p.name): no file list in \(directory)/info")
        }
        return (list, Self.parseList(try FS.readText(list)))
    }

    public static func parseList(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("/") && $0 != "/." }
    }

    /// Parts of a package a program does not need at run time; `--explain` of a
    /// package image shows what was left out by this list.
    public static let excludedPrefixes = [
        "/usr/share/doc/", "/usr/share/doc-base/", "/usr/share/man/", "/usr/share/info/",
        "/usr/share/locale/", "/usr/share/lintian/", "/usr/share/bug/", "/usr/share/bash-completion/",
        "/usr/share/zsh/", "/usr/share/fish/", "/usr/share/menu/", "/usr/share/applications/",
        "/usr/share/icons/", "/usr/share/pixmaps/", "/usr/share/apport/", "/usr/share/polkit-1/",
        "/lib/systemd/", "/usr/lib/systemd/", "/usr/lib/tmpfiles.d/", "/usr/lib/sysusers.d/",
        "/etc/init.d/", "/etc/init/", "/etc/systemd/", "/etc/logrotate.d/", "/etc/apparmor.d/",
        "/etc/ufw/", "/etc/cron.d/", "/etc/cron.daily/", "/etc/cron.hourly/", "/etc/cron.weekly/",
        "/etc/cron.monthly/", "/etc/rc0.d/", "/etc/rc1.d/", "/etc/rc2.d/", "/etc/rc3.d/", "/etc/rc4.d/",
        "/etc/rc5.d/", "/etc/rc6.d/", "/etc/rcS.d/", "/etc/default/",
    ]

    static let runtimePrefixes = ["/bin/", "/sbin/", "/lib/", "/lib64/", "/usr/bin/", "/usr/sbin/", "/usr/lib/",
                                  "/usr/lib64/", "/usr/libexec/", "/usr/share/", "/etc/", "/usr/local/"]

    /// Whether a listed path is something a program may need at run time: programs,
    /// libraries and their data, `/usr/share/<dir>` data, configuration under /etc.
    /// `extras` re-admits excluded groups by their directory name ("doc", "man", "locale").
    public static func isRuntimePath(_ path: String, extras: Set<String> = []) -> Bool {
        let probe = path + "/"
        for prefix in excludedPrefixes where probe.hasPrefix(prefix) {
            let group = prefix.split(separator: "/").last.map(String.init) ?? ""
            if !extras.contains(group) { return false }
        }
        return runtimePrefixes.contains { probe.hasPrefix($0) } && probe != "/usr/share/" && probe != "/etc/"
    }
}
