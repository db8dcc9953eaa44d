import Foundation
import Testing

@testable import JailKit

/// Jail files on their own (`parseJail`): decoding, defaults, and diagnostics with exact
/// positions.
@Suite struct SpecJailTests {
    /// `LINE:COLUMN severity field: message`, the part of a diagnostic that positions and
    /// explains it; `valid` texts are checked in full where it matters.
    func summaries(_ source: String, name: String = "web") -> [String] {
        let (_, diagnostics) = SpecLoader.parseJail(source: source, file: "Jails/\(name).toml", name: name)
        return diagnostics.map { "\($0.line):\($0.column) \($0.severity): \($0.field): \($0.message)" }
    }

    @Test func minimalJailGetsDefaults() throws {
        let (jail, diagnostics) = SpecLoader.parseJail(
            source: "image = \"shell\"\ncommand = [\"/bin/sh\", \"-c\", \"true\"]\n", file: "Jails/web.toml",
            name: "web")
        #expect(diagnostics.isEmpty)
        let spec = try #require(jail)
        #expect(
            spec
                == JailSpec(
                    name: "web", file: "Jails/web.toml", image: "shell", command: ["/bin/sh", "-c", "true"],
                    user: .name("root"), group: nil, hostname: "web", workdir: "/", env: [:], volumes: [],
                    stopSignal: 15, stopTimeout: 10, description: nil))
    }

    @Test func everyKeyDecodes() throws {
        let source = #"""
            description = "all keys"
            image = "shell"
            command = ["/usr/bin/env", "A=1"]
            user = 1000
            group = "nogroup"
            hostname = "Box-1"
            workdir = "/srv/./app/../app/"
            stop_signal = "quit"
            stop_timeout = 2.5
            env.HOME = "/root"

            [env]
            PATH = "/bin"

            [[volumes]]
            source = "/srv/data"
            target = "/data/"
            readonly = true

            [[volumes]]
            source = "/srv/logs"
            target = "/var/log"
            """#
        let (jail, diagnostics) = SpecLoader.parseJail(source: source, file: "j.toml", name: "box_1")
        // `env.HOME = ...` before `[env]` is a TOML redefinition; TOMLKit must reject it.
        #expect(diagnostics.count == 1)
        #expect(jail == nil)

        let fixed = source.replacingOccurrences(of: "env.HOME = \"/root\"\n", with: "")
            .replacingOccurrences(of: "PATH = \"/bin\"", with: "PATH = \"/bin\"\nHOME = \"/root\"")
        let (second, none) = SpecLoader.parseJail(source: fixed, file: "j.toml", name: "box_1")
        #expect(none.isEmpty)
        let spec = try #require(second)
        #expect(spec.user == .id(1000))
        #expect(spec.group == .name("nogroup"))
        #expect(spec.hostname == "Box-1")
        #expect(spec.workdir == "/srv/app")
        #expect(spec.stopSignal == 3)
        #expect(spec.stopTimeout == 2.5)
        #expect(spec.env == ["PATH": "/bin", "HOME": "/root"])
        #expect(
            spec.volumes == [
                VolumeSpec(source: "/srv/data", target: "/data", readonly: true),
                VolumeSpec(source: "/srv/logs", target: "/var/log", readonly: false),
            ])
        #expect(spec.description == "all keys")
    }

    @Test func syntaxErrorHasTOMLKitPosition() throws {
        let (jail, diagnostics) = SpecLoader.parseJail(
            source: "image = \"shell\"\ncommand = ]\n", file: "Jails/web.toml", name: "web")
        #expect(jail == nil)
        let diagnostic = try #require(diagnostics.first)
        #expect(diagnostics.count == 1)
        #expect((diagnostic.line, diagnostic.column) == (2, 11))
        #expect(diagnostic.field == "")
        #expect(diagnostic.description.hasPrefix("Jails/web.toml:2:11: error: TOML syntax error: "))
    }

    @Test func unknownKeyAndMissingRequiredKey() {
        let (_, diagnostics) = SpecLoader.parseJail(
            source: "image = \"shell\"\ncomand = [\"/bin/sh\"]\n", file: "Jails/web.toml", name: "web")
        #expect(
            diagnostics.map(\.description) == [
                #"Jails/web.toml:1:1: error: command: missing required key; expected a non-empty array of strings starting with an absolute path, e.g. ["/bin/sh", "-c", "..."]"#,
                #"Jails/web.toml:2:1: error: comand: unknown key in a jail file; did you mean "command"?"#,
            ])
        #expect(summaries("imgae = \"shell\"\ncommand = [\"/bin/sh\"]\n").contains("1:1 error: imgae: unknown key in a jail file"))
    }

    @Test func unknownKeyWithoutCloseMatchListsValidKeys() throws {
        let (_, diagnostics) = SpecLoader.parseJail(
            source: "image = \"shell\"\ncommand = [\"/bin/sh\"]\nxyzzy = 1\n", file: "j.toml", name: "web")
        let diagnostic = try #require(diagnostics.first)
        #expect(diagnostic.valid.hasPrefix("valid keys in a jail file: after, backup, capabilities, command, description, env, filesystem, group,"))
    }

    @Test func wrongTypesPointAtValues() {
        let source = """
            image = 42
            command = "/bin/sh"
            user = true
            env = ["A"]
            volumes = { source = "/a" }
            stop_timeout = "10"
            """
        #expect(
            summaries(source) == [
                "1:9 error: image: expected a string, found an integer",
                "2:11 error: command: expected an array of strings, found a string",
                "3:8 error: user: expected a string or an integer, found a boolean",
                "4:7 error: env: expected a table, found an array",
                "5:11 error: volumes: expected an array of tables, found a table",
                "6:16 error: stop_timeout: expected a number, found a string",
            ])
    }

    @Test func pathsAndVolumeTargets() {
        let source = """
            image = "shell"
            command = ["bin/sh", "-c"]
            workdir = "srv/app"
            [[volumes]]
            source = "data"
            target = "../../etc"
            [[volumes]]
            source = "/srv/a"
            target = "/srv/../../etc"
            [[volumes]]
            source = "/srv/b"
            target = "/"
            [[volumes]]
            source = "/srv/c"
            target = "/proc/self/../sys"
            [[volumes]]
            source = "/srv/d"
            target = "/dev"
            [[volumes]]
            target = "/data"
            readonly = "yes"
            """
        #expect(
            summaries(source) == [
                #"2:12 error: command[0]: "bin/sh" is not an absolute path"#,
                #"3:11 error: workdir: "srv/app" is a relative path"#,
                #"5:10 error: volumes[0].source: "data" is a relative path"#,
                #"6:10 error: volumes[0].target: "../../etc" is a relative path"#,
                #"9:10 error: volumes[1].target: "/srv/../../etc" escapes the jail root"#,
                #"12:10 error: volumes[2].target: "/" is the jail root itself"#,
                #"15:10 error: volumes[3].target: "/proc/self/../sys" is under /proc, which the runtime mounts"#,
                #"18:10 error: volumes[4].target: "/dev" is under /dev, which the runtime mounts"#,
                "19:1 error: volumes[5].source: missing required key",
                "21:12 error: volumes[5].readonly: expected a boolean, found a string",
            ])
    }

    @Test func duplicateVolumeTargetsAndUnknownVolumeKey() {
        let source = """
            image = "shell"
            command = ["/bin/sh"]
            volumes = [
              { source = "/srv/a", target = "/data" },
              { source = "/srv/b", target = "/data/./" },
              { source = "/srv/c", target = "/other", read_only = true },
            ]
            """
        let (_, diagnostics) = SpecLoader.parseJail(source: source, file: "Jails/web.toml", name: "web")
        #expect(
            diagnostics.map(\.description) == [
                #"Jails/web.toml:5:33: error: volumes[1].target: target "/data" is already mounted by volumes[0]; each volume needs its own target"#,
                #"Jails/web.toml:6:43: error: volumes[2].read_only: unknown key in a volume; did you mean "readonly"?"#,
            ])
    }

    @Test func createdVolumeOwnership() throws {
        let good = """
            image = "shell"
            command = ["/bin/sh"]
            [[volumes]]
            source = "/srv/www/alice"
            target = "/var/www"
            create = true
            owner = "alice"
            group = 33
            mode = "0750"
            """
        let (jail, diagnostics) = SpecLoader.parseJail(source: good, file: "Jails/web.toml", name: "web")
        #expect(diagnostics.isEmpty)
        let v = try #require(jail?.volumes.first)
        #expect(v.create && v.owner == .name("alice") && v.group == .id(33) && v.mode == 0o750)
        #expect(summaries("""
            image = "shell"
            command = ["/bin/sh"]
            [[volumes]]
            source = "/srv/a"
            target = "/a"
            owner = "alice"
            [[volumes]]
            source = "/srv/b"
            target = "/b"
            create = true
            mode = "4755"
            """) == [
                "6:1 error: volumes[0].owner: owner applies only to a directory jailctl creates",
                "11:8 error: volumes[1].mode: \"4755\" is not octal permission bits 000-777",
            ])
    }

    @Test func healthTable() throws {
        let base = "image = \"shell\"\ncommand = [\"/bin/sh\"]\n"
        let (jail, d) = SpecLoader.parseJail(source: base + "[health]\nfcgi = \"/ping\"\nsocket = \"/run/php/fpm.sock\"\ninterval = 5\nretries = 2\nstart_period = 10\n",
                                             file: "Jails/web.toml", name: "web")
        #expect(d.isEmpty)
        let h = try #require(jail?.supervision.health)
        #expect(h.check == .fcgi(path: "/ping") && h.endpoint == .socket("/run/php/fpm.sock"))
        #expect(h.interval == 5 && h.timeout == 2 && h.retries == 2 && h.startPeriod == 10)
        #expect(summaries(base + "[health]\ntcp = 80\nhttp = \"/\"\n") == ["3:2 error: health: more than one check: http, tcp"])
        #expect(summaries(base + "[health]\ninterval = 3\n") == ["3:2 error: health: no check"])
        #expect(summaries(base + "[health]\nhttp = \"/x\"\n") == ["3:2 error: health: http and fcgi checks need port or socket"])
        #expect(summaries(base + "[health]\nhttp = \"/a b\"\nport = 80\n") == ["4:8 error: health.http: \"/a b\" is not an absolute URL path of up to 100 printable characters"])
        #expect(summaries(base + "[health]\ntcp = 80\nport = 81\n") == ["5:1 error: health.port: only http and fcgi checks connect to a port or socket"])
        #expect(summaries(base + "[health]\ntcp = 0\n").first?.hasPrefix("4:7 error: health.tcp:") == true, "\(summaries(base + "[health]\ntcp = 0\n"))")
    }

    @Test func namesHostnameEnvSignalTimeout() {
        let source = """
            image = "Shell"
            command = ["/bin/sh"]
            hostname = "-bad-"
            env = { "1X" = "a", OK = 1, fine_2 = "x" }
            stop_signal = "SIGFOO"
            stop_timeout = 0
            """
        #expect(
            summaries(source, name: "Web") == [
                #"1:1 error: name: "Web" is not a valid name (taken from the file name)"#,
                #"1:9 error: image: "Shell" is not a valid name"#,
                #"3:12 error: hostname: "-bad-" is not a valid hostname"#,
                #"4:9 error: env.1X: "1X" is not a valid variable name"#,
                "4:26 error: env.OK: expected a string, found an integer",
                #"5:15 error: stop_signal: "SIGFOO" is not a signal name"#,
                "6:16 error: stop_timeout: 0 is not a positive number of seconds",
            ])
    }

    @Test func numericRangeChecks() {
        let source = """
            image = "shell"
            command = ["/bin/sh"]
            user = -1
            group = 4294967295
            stop_signal = 99
            stop_timeout = -1.5
            """
        #expect(
            summaries(source) == [
                "3:8 error: user: -1 is out of range",
                "4:9 error: group: 4294967295 is out of range",
                "5:15 error: stop_signal: 99 is not a signal number",
                "6:16 error: stop_timeout: -1.5 is not a positive number of seconds",
            ])
    }

    @Test func signalsByNameAndNumber() {
        for (text, number) in [("\"SIGTERM\"", 15), ("\"TERM\"", 15), ("\"SIGQUIT\"", 3), ("\"kill\"", 9), ("64", 64), ("1", 1)] {
            let (jail, diagnostics) = SpecLoader.parseJail(
                source: "image = \"s\"\ncommand = [\"/bin/sh\"]\nstop_signal = \(text)\n", file: "j.toml", name: "j")
            #expect(diagnostics.isEmpty)
            #expect(jail?.stopSignal == Int32(number))
        }
    }

    @Test func instanceFilesAreNotJails() {
        // A jail file is a plain name or a template (BASE@); an instance is never a file.
        #expect(
            summaries("image = \"shell\"\ncommand = [\"/bin/sh\"]\n", name: "web@1") == [
                #"1:1 error: name: "web@1" is an instance name (taken from the file name); instances are made from the template web@.toml"#
            ])
        #expect(SpecName.parseFileName("web@").name?.isTemplate == true)
        #expect(SpecName.parse("web@").name == nil)
    }

    @Test func emptyCommandAndBadElements() {
        #expect(summaries("image = \"s\"\ncommand = []\n") == ["2:11 error: command: the command is empty"])
        #expect(
            summaries("image = \"s\"\ncommand = [\"/bin/sh\", 3]\n") == [
                "2:23 error: command[1]: expected a string, found an integer"
            ])
    }

    @Test func defaultHostnameFromNamesThatAreNotLabels() {
        #expect(SpecRules.defaultHostname(for: "my_app-") == "my-app")
        #expect(SpecRules.defaultHostname(for: "web") == "web")
        #expect(SpecRules.defaultHostname(for: "_") == "jail")
    }
}
