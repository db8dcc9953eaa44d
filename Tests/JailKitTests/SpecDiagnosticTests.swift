import Testing

@testable import JailKit

/// Small pieces the diagnostics rely on.
@Suite struct SpecDiagnosticTests {
    @Test func descriptionFormat() {
        let full = SpecDiagnostic(
            file: "Jails/a.toml", line: 3, column: 7, field: "volumes[1].target", message: "\"/\" is the jail root itself",
            valid: "an absolute path inside the jail")
        #expect(full.description == #"Jails/a.toml:3:7: error: volumes[1].target: "/" is the jail root itself; an absolute path inside the jail"#)
        let bare = SpecDiagnostic(
            file: "a.toml", line: 1, column: 2, field: "", message: "TOML syntax error: x", valid: "", severity: .warning)
        #expect(bare.description == "a.toml:1:2: warning: TOML syntax error: x")
    }

    @Test func suggestions() {
        let keys = JailSchema.fields.map(\.key)
        #expect(SpecRules.suggestion(for: "comand", among: keys) == "command")
        #expect(SpecRules.suggestion(for: "imgae", among: keys) == "image")
        #expect(SpecRules.suggestion(for: "stop_timout", among: keys) == "stop_timeout")
        #expect(SpecRules.suggestion(for: "Hostname", among: keys) == "hostname")
        #expect(SpecRules.suggestion(for: "xyzzy", among: keys) == nil)
    }

    @Test func crlfLineEndings() {
        let map = TOMLSourceMap(source: "image = \"shell\"\r\ncommand = [\r\n  \"/bin/sh\",\r\n]\r\n")
        #expect(map.valuePosition("image") == SourcePosition(line: 1, column: 9))
        #expect(map.valuePosition("command[0]") == SourcePosition(line: 3, column: 3))
    }

    @Test func pathNormalisation() {
        #expect(SpecRules.normalise("/a/./b//c/../d/") == .path("/a/b/d"))
        #expect(SpecRules.normalise("/..") == .escapesRoot)
        #expect(SpecRules.normalise("a/b") == .relative)
        #expect(SpecRules.normalise("/") == .path("/"))
        #expect(SpecRules.isReserved("/process") == nil)
        #expect(SpecRules.isReserved("/sys/fs") == "/sys")
    }
}
