import Glibc
import Testing

@testable import JailKit

/// The parsers behind the built-in image rules, on fixture text, and the rules on this
/// host's real files (Debian 12 with the packages scripts/install-deps installs).
@Suite struct ImageRulesTests {
    // MARK: dpkg

    let status = """
        Package: rsync
        Status: install ok installed
        Priority: optional
        Architecture: amd64
        Version: 3.2.7-1
        Conffiles:
         /etc/default/rsync 0123
        Description: fast copy
         more text: with a colon

        Package: libc6
        Status: install ok installed
        Architecture: amd64
        Multi-Arch: same
        Version: 2.36-9

        Package: nano
        Status: deinstall ok config-files
        Architecture: amd64
        Version: 7.2-1
        """

    @Test func statusParagraphs() {
        let p = DpkgDatabase.parseStatus(status)
        #expect(p.map(\.name) == ["rsync", "libc6", "nano"])
        #expect(p.map(\.isInstalled) == [true, true, false])
        #expect(p[0].version == "3.2.7-1")
        #expect(p[1].architecture == "amd64")
    }

    @Test func listFilter() {
        let list = DpkgDatabase.parseList("/.\n/usr\n/usr/bin\n/usr/bin/rsync\n/usr/share/doc/rsync/copyright\n/etc/rsyncd.conf\n")
        #expect(list == ["/usr", "/usr/bin", "/usr/bin/rsync", "/usr/share/doc/rsync/copyright", "/etc/rsyncd.conf"])
        #expect(DpkgDatabase.isRuntimePath("/usr/bin/rsync"))
        #expect(DpkgDatabase.isRuntimePath("/usr/lib/openssh/sftp-server"))
        #expect(DpkgDatabase.isRuntimePath("/usr/share/openssh/sshd_config"))
        #expect(DpkgDatabase.isRuntimePath("/etc/ssh/moduli"))
        #expect(!DpkgDatabase.isRuntimePath("/usr/share/doc/rsync/copyright"))
        #expect(DpkgDatabase.isRuntimePath("/usr/share/doc/rsync/copyright", extras: ["doc"]))
        #expect(!DpkgDatabase.isRuntimePath("/usr/share/man/man1/rsync.1.gz"))
        #expect(!DpkgDatabase.isRuntimePath("/lib/systemd/system/rsync.service"))
        #expect(!DpkgDatabase.isRuntimePath("/usr/share"))
    }

    @Test func realDatabase() throws {
        let db = try DpkgDatabase()
        guard case .installed(let coreutils) = db.lookup("coreutils") else {
            Issue.record("coreutils is not installed?")
            return
        }
        #expect(try db.files(of: coreutils).paths.contains("/usr/bin/ls") || db.files(of: coreutils).paths.contains("/bin/ls"))
        #expect(db.lookup("no-such-package-xyz") == .unknown)
        if case .installed(let libc) = db.lookup("libc6:amd64") {
            // Multi-Arch: same packages keep their list as name:arch.list.
            #expect(db.listFile(of: libc)?.hasSuffix("libc6:amd64.list") == true)
        }
    }

    // MARK: nsswitch

    let nsswitch = """
        # comment
        passwd:         files systemd
        group:          files [SUCCESS=merge] systemd
        hosts:          files mdns4_minimal [NOTFOUND=return] dns
        services:       db files
        """

    @Test func nsswitchParse() {
        let p = NSSwitch.parse(nsswitch)
        #expect(p.map(\.database) == ["passwd", "group", "hosts", "services"])
        #expect(p[2].services.map(\.name) == ["files", "mdns4_minimal", "dns"])
        #expect(p[2].services[1].actions == ["[NOTFOUND=return]"])
        #expect(p[1].services[0].actions == ["[SUCCESS=merge]"])
    }

    @Test func nsswitchGenerateKeepsOnlyAvailableModules() {
        let available: Set<String> = ["files", "dns"]
        let (text, used) = NSSwitch.generate(host: nsswitch, databases: ["passwd", "group", "hosts", "services", "protocols"]) {
            available.contains($0)
        }
        #expect(used == ["files", "dns"])
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines == ["passwd: files", "group: files [SUCCESS=merge]", "hosts: files dns", "services: files", "protocols: files"])
    }

    // MARK: PAM

    @Test func pamIncludesResolveOnceInOrder() {
        let files: [String: String] = [
            "/p/sshd": """
                @include common-auth
                account    required     pam_nologin.so
                session [success=ok ignore=ignore module_unknown=ignore default=bad] pam_selinux.so close
                -session   optional     pam_systemd.so
                auth       include      login   # a whole other stack
                """,
            "/p/common-auth": "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\n@include sshd\n",
            "/p/login": "auth substack common-auth\nauth optional /opt/pam/pam_custom.so\n",
        ]
        let r = PAMConfig.resolve(service: "sshd", directory: "/p") { files[$0] }
        #expect(r.files == ["/p/sshd", "/p/common-auth", "/p/login"])
        #expect(r.modules.map(\.name) == ["pam_nologin.so", "pam_selinux.so", "pam_systemd.so", "pam_unix.so", "pam_deny.so", "/opt/pam/pam_custom.so"])
        #expect(r.modules.filter(\.optional).map(\.name) == ["pam_systemd.so"])
    }

    @Test func lockedShadow() {
        #expect(PAMRule.lockedShadow(passwd: "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n")
            == "root:!:19000:0:99999:7:::\nwww:!:19000:0:99999:7:::\n")
    }

    // MARK: PHP

    @Test func phpIni() {
        let ini = """
            [PHP]
            ; extension=commented.so
            extension=mysqli.so
            extension = "pdo_mysql"
            zend_extension=opcache.so ; trailing comment
            extension_dir = '/opt/php/ext'
            extension=/abs/path/custom.so
            """
        let exts = PHPIni.extensions(in: ini)
        #expect(exts.map(\.name) == ["mysqli.so", "pdo_mysql", "opcache.so", "/abs/path/custom.so"])
        #expect(exts.map(\.zend) == [false, false, true, false])
        #expect(PHPIni.setting("extension_dir", in: ini) == "/opt/php/ext")
        #expect(exts.map { PHPIni.file(of: $0, extensionDir: "/x") } == ["/x/mysqli.so", "/x/pdo_mysql.so", "/x/opcache.so", "/abs/path/custom.so"])
    }

    @Test func phpProgramNames() {
        #expect(PHPIni.program("php8.2")?.sapi == "cli")
        #expect(PHPIni.program("php-fpm8.2")?.sapi == "fpm")
        #expect(PHPIni.program("php-cgi8.2")?.version == "8.2")
        #expect(PHPIni.program("php") == nil)
        #expect(PHPIni.program("phpize8.2") == nil)
        #expect(PHPIni.program("php-config8.2") == nil)
    }

    // MARK: rules on the host

    func plan(_ spec: ImageSpec) throws -> ImagePlan {
        try ImageBuilder.host().plan(spec, users: ["nobody"])
    }

    @Test func packagesImage() throws {
        guard case .installed = try DpkgDatabase().lookup("openssh-server") else { return }
        let p = try plan(ImageSpec(name: "ssh", file: "", packages: ["rsync", "openssh-server"]))
        for path in ["/usr/bin/rsync", "/usr/sbin/sshd", "/etc/pam.d/sshd", "/etc/pam.d/common-auth",
                     "/etc/nsswitch.conf", "/etc/hosts", "/etc/shadow"] {
            #expect(p.contains(path), "\(path)")
        }
        #expect(p.entries.contains { $0.path.hasSuffix("/security/pam_unix.so") && $0.reason.hasPrefix("pam:") })
        #expect(p.entries.contains { $0.path.hasSuffix("/libnss_files.so.2") || $0.path.hasSuffix("/libc.so.6") })
        #expect(!p.entries.contains { $0.path.hasPrefix("/usr/share/doc/") || $0.path.hasPrefix("/usr/share/man/") })
        #expect(p.entry("/usr/sbin/sshd")?.reason == "packages: openssh-server")
        // Host users never: only root, nobody and the asked-for users.
        if case .generated(let passwd)? = p.entry("/etc/passwd")?.kind {
            #expect(passwd.split(separator: "\n").map { $0.split(separator: ":")[0] } == ["root", "nobody"])
        }
    }

    @Test func unknownPackageIsAValidateError() {
        let (_, d) = SpecLoader.parseImage(source: "packages = [\"rsync\", \"no-such-pkg-xyz\", \"Bad_Name\"]\n",
                                           file: "Images/x.toml", name: "x", hostChecks: true)
        let s = d.map { "\($0.line):\($0.column) \($0.field): \($0.message)" }
        #expect(s == ["1:22 packages[1]: no package named \"no-such-pkg-xyz\" on this host",
                      "1:41 packages[2]: \"Bad_Name\" is not a Debian package name"])
    }

    @Test func phpImageHasEnabledExtensions() throws {
        guard FS.exists("/usr/bin/php8.2") else { return }
        let p = try plan(ImageSpec(name: "php", file: "", binaries: ["/usr/bin/php8.2"]))
        for ext in ["mysqli.so", "opcache.so", "mbstring.so", "curl.so", "dom.so"] {
            #expect(p.contains("/usr/lib/php/20220829/" + ext), "\(ext)")
        }
        #expect(p.contains("/etc/php/8.2/cli/php.ini"))
        #expect(p.contains("/etc/php/8.2/mods-available/mysqli.ini"))
        #expect(p.entries.contains { $0.path.hasSuffix("/gconv/ISO8859-1.so") })
        #expect(p.entry("/usr/lib/php/20220829/curl.so")?.reason.hasPrefix("php: ") == true)
    }

    @Test func dlopenAndTimezone() throws {
        let p = try plan(ImageSpec(name: "d", file: "", binaries: ["/bin/sh"], dlopen: ["/lib/x86_64-linux-gnu/libnss_dns.so.2"]))
        #expect(p.entries.contains { $0.path.hasSuffix("libnss_dns.so.2") })
        if FS.exists("/etc/localtime") { #expect(p.contains("/etc/localtime")) }
        #expect(p.entries.contains { $0.path.hasSuffix("terminfo/x/xterm") })
    }
}
