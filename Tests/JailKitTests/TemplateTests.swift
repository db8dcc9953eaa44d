import Foundation
import Testing

@testable import JailKit

/// Templates (`Jails/BASE@.toml`), their instances, the `[tenant]` table, and the php-fpm
/// and nginx configurations rendered from it. No root needed.
@Suite struct TemplateTests {
    func withSpecs(_ files: [String: String], _ body: (String) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tpl-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (relative, content) in files {
            let path = root + "/" + relative
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try content.write(toFile: path, atomically: true, encoding: .utf8)
        }
        try body(root)
    }

    static let tenantTemplate = """
        image = "shell"
        command = ["/bin/sh"]
        hostname = "%i"
        env = { SITE = "%n", TEMPLATE = "%p", PCT = "100%%" }
        [[volumes]]
        source = "%h/www"
        target = "/srv/www"
        [[volumes]]
        source = "%h/run"
        target = "/run/fpm"
        [[volumes]]
        source = "%h/etc/fpm.conf"
        target = "/etc/fpm.conf"
        readonly = true
        [tenant]
        webroot = "/srv/www"
        socket = "/run/fpm/php.sock"
        php_config = "/etc/fpm.conf"
        [tenant.php]
        max_children = 3
        memory_limit = "64M"
        disable_functions = ["exec", "system"]

        """

    @Test func names() {
        #expect(SpecName.parse("php-tenant@alice").name == SpecName(base: "php-tenant", instance: "alice"))
        #expect(SpecName.parse("php-tenant@alice").name?.description == "php-tenant@alice")
        #expect(SpecName.parse("web").name?.isInstance == false)
        #expect(SpecName.parse("a@b@c").problem == #""a@b@c" has more than one '@'"#)
        #expect(SpecName.parse("web@Alice").problem == #""web@Alice": "Alice" is not a valid instance name"#)
        #expect(SpecName.parse("web@").problem != nil)
        #expect(SpecName.parsePlain("web@1").problem != nil)
        #expect(SpecName.parseFileName("web@").name?.isTemplate == true)
    }

    @Test func placeholders() {
        let v = JailTemplate.Values(instance: "alice", base: "php", home: "/t/alice", libexec: "/usr/lib/jailctl")
        #expect(JailTemplate.expand("%h/www %i %n %p %L 50%%", v).0 == "/t/alice/www alice php@alice php /usr/lib/jailctl 50%")
        #expect(JailTemplate.expand("%q", v) == ("x", "%q"))
        #expect(JailTemplate.expand("100%", v).bad == "%")
        #expect(JailTemplate.expand("no placeholders", v).0 == "no placeholders")
    }

    @Test func templateLoadsAndInstantiates() throws {
        try withSpecs(["Images/shell.toml": "binaries = [\"/bin/sh\"]\n", "Jails/php@.toml": Self.tenantTemplate]) { root in
            let (set, diagnostics) = SpecLoader.load(directory: root, hostChecks: false)
            #expect(diagnostics.isEmpty)
            #expect(set.jails.isEmpty)
            let template = try #require(set.templates["php"])
            let values = JailTemplate.Values(instance: "alice", base: "php", home: "/t/alice", libexec: "/x")
            let (jail, found) = SpecLoader.instantiate(template, values: values)
            #expect(found.isEmpty)
            let spec = try #require(jail)
            #expect(spec.name == "php@alice")
            #expect(spec.hostname == "alice")
            #expect(spec.env == ["SITE": "php@alice", "TEMPLATE": "php", "PCT": "100%"])
            #expect(spec.volumes.map(\.source) == ["/t/alice/www", "/t/alice/run", "/t/alice/etc/fpm.conf"])
            let t = try #require(spec.tenant)
            #expect(t.webroot == "/srv/www")
            #expect(t.socketDirectory == "/run/fpm")
            #expect(t.php.maxChildren == 3)
            #expect(t.php.memoryLimit == 64 << 20)
            #expect(t.php.disableFunctions == ["exec", "system"])
        }
    }

    @Test func errorsNameTheTemplateFileAndLine() throws {
        let broken = Self.tenantTemplate
            .replacingOccurrences(of: "source = \"%h/www\"", with: "source = \"%h/%q\"")
            .replacingOccurrences(of: "max_children = 3", with: "max_children = 0")
        try withSpecs(["Images/shell.toml": "binaries = [\"/bin/sh\"]\n", "Jails/php@.toml": broken]) { root in
            let (set, diagnostics) = SpecLoader.load(directory: root, hostChecks: false)
            #expect(set.templates.isEmpty)
            let lines = diagnostics.map { $0.description.replacingOccurrences(of: root + "/", with: "") }
            #expect(lines == [
                #"Jails/php@.toml:6:10: error: volumes[0].source: unknown placeholder "%q" in "%h/%q"; placeholders: %i instance, %n jail name, %p template name, %h the instance's host directory, %L jailctl's directory, %% a literal %"#,
                "Jails/php@.toml:20:16: error: tenant.php.max_children: 0 is out of range; a number of worker processes, 1-1000",
            ])
        }
    }

    @Test func anInstanceThatBreaksTheTemplateIsReportedAtTheTemplatesLine() throws {
        // "a_b" is a fine instance name, but not a hostname.
        try withSpecs(["Images/shell.toml": "binaries = [\"/bin/sh\"]\n", "Jails/php@.toml": Self.tenantTemplate]) { root in
            let (set, _) = SpecLoader.load(directory: root, hostChecks: false)
            let template = try #require(set.templates["php"])
            let (jail, found) = SpecLoader.instantiate(template, values: .init(instance: "a_b", base: "php", home: "/t/a_b", libexec: "/x"))
            #expect(jail == nil)
            #expect(found.map { $0.description.replacingOccurrences(of: root + "/", with: "") } == [
                #"Jails/php@.toml:3:12: error: hostname: "a_b" is not a valid hostname (in instance php@a_b); 1-63 letters, digits and '-', not starting or ending with '-'"#,
            ])
        }
    }

    @Test func tenantTableIsCheckedAgainstTheVolumes() {
        let source = """
            image = "shell"
            command = ["/bin/sh"]
            [[volumes]]
            source = "/srv/conf"
            target = "/etc/fpm.conf"
            [tenant]
            webroot = "/srv/www"
            socket = "/run/fpm/php.sock"
            php_config = "/etc/fpm.conf"
            """
        let (jail, diagnostics) = SpecLoader.parseJail(source: source, file: "Jails/t.toml", name: "t")
        #expect(jail == nil)
        #expect(diagnostics.map { "\($0.line):\($0.column) \($0.field): \($0.message)" } == [
            #"7:11 tenant.webroot: "/srv/www" is not the target of a volume"#,
            #"8:10 tenant.socket: the socket's directory "/run/fpm" is not the target of a volume"#,
            "9:14 tenant.php_config: the config volume /etc/fpm.conf is writable",
        ])
    }

    @Test func imageNamesHaveNoInstances() {
        let (_, diagnostics) = SpecLoader.parseJail(source: "image = \"php@x\"\ncommand = [\"/bin/sh\"]\n", file: "Jails/j.toml", name: "j")
        #expect(diagnostics.map(\.message) == [#""php@x" contains '@'; only jails have templates and instances"#])
    }

    @Test func poolConfigRendersTheTenantsSettings() throws {
        var t = TenantSpec(webroot: "/srv/www", socket: "/run/fpm/php.sock", phpConfig: "/etc/fpm.conf")
        t.php.maxChildren = 3
        t.php.memoryLimit = 64 << 20
        t.php.disableFunctions = ["exec", "system"]
        t.php.slowlogTimeout = 5
        let text = PHPPoolConfig.render(pool: "alice", tenant: t, timezone: "Europe/Paris")
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in ["[global]", "error_log = /proc/self/fd/2", "daemonize = no", "[alice]", "listen = /run/fpm/php.sock",
                         "listen.mode = 0666", "pm = ondemand", "pm.max_children = 3", "ping.path = /ping",
                         "catch_workers_output = yes", "clear_env = yes", "request_slowlog_timeout = 5", "slowlog = /proc/self/fd/2",
                         "php_admin_value[memory_limit] = 67108864",
                         "php_admin_value[open_basedir] = /srv/www:/var/lib/php/sessions:/tmp",
                         "php_admin_value[disable_functions] = exec,system", "php_admin_value[date.timezone] = Europe/Paris",
                         "php_admin_value[sendmail_path] = /usr/sbin/sendmail -t -i"]
        {
            #expect(lines.contains(expected), "\(expected)")
        }
        // No user/group: php-fpm is not root in the jail and must not try to switch.
        #expect(!text.contains("\nuser ="))
        #expect(!text.contains("\ngroup ="))
    }

    @Test func nginxServerBlockPassesTheJailsPaths() {
        let text = NginxConfig.render(.init(domain: "alice.test", listen: "127.0.0.1:18080", webroot: "/var/lib/jailctl/tenants/alice/www",
                                            documentRoot: "/srv/www", socket: "/var/lib/jailctl/tenants/alice/run/php.sock",
                                            tenant: "alice", maxBody: 128 << 20))
        #expect(text.contains("    listen 127.0.0.1:18080;\n"))
        #expect(text.contains("    server_name alice.test;\n"))
        #expect(text.contains("    root /var/lib/jailctl/tenants/alice/www;\n"))
        #expect(text.contains("fastcgi_pass unix:/var/lib/jailctl/tenants/alice/run/php.sock;"))
        #expect(text.contains("fastcgi_param SCRIPT_FILENAME   /srv/www$fastcgi_script_name;"))
        #expect(text.contains("fastcgi_param DOCUMENT_ROOT     /srv/www;"))
        #expect(!text.contains("include"))
        #expect(text.contains("disable_symlinks if_not_owner from=$document_root;"))
        #expect(text.contains("client_max_body_size 128m;"))
    }

    @Test func repositoryTemplateLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let (set, diagnostics) = SpecLoader.load(directory: root, hostChecks: false)
        #expect(diagnostics.map(\.description) == [])
        let template = try #require(set.templates["php-tenant"])
        let (jail, _) = SpecLoader.instantiate(template, values: .sample(base: "php-tenant"), nameInstance: false)
        let spec = try #require(jail)
        #expect(spec.isolation.userns)
        #expect(spec.stopSignal == 3)
        #expect(spec.tenant?.socket == "/run/fpm/php.sock")
    }
}
