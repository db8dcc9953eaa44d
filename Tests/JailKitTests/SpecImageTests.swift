import Testing

@testable import JailKit

/// Image files on their own (`parseImage`), with and without host checks.
@Suite struct SpecImageTests {
    func summaries(_ source: String, hostChecks: Bool) -> [String] {
        let (_, diagnostics) = SpecLoader.parseImage(
            source: source, file: "Images/base.toml", name: "base", hostChecks: hostChecks)
        return diagnostics.map { "\($0.line):\($0.column) \($0.severity): \($0.field): \($0.message)" }
    }

    let broken = """
        binaries = ["/bin/sh", "/nonexistent/prog", "/bin/sh", "/etc/passwd", "relative"]
        files = ["/etc/hostname-does-not-exist-xyz", "/nonexistent-xyz/*.conf", "/etc/passwd"]
        directories = ["/tmp", "/", "/var/../tmp"]
        descripton = "typo"
        """

    @Test func hostChecksFindMissingProgramsAndFiles() {
        #expect(
            summaries(broken, hostChecks: true) == [
                #"1:24 error: binaries[1]: "/nonexistent/prog" does not exist on this host"#,
                #"1:45 error: binaries[2]: duplicate entry "/bin/sh", already listed as binaries[0]"#,
                #"1:56 error: binaries[3]: "/etc/passwd" is not an ELF program"#,
                #"1:71 error: binaries[4]: "relative" is a relative path"#,
                #"2:10 error: files[0]: "/etc/hostname-does-not-exist-xyz" does not exist on this host"#,
                #"2:46 warning: files[1]: glob "/nonexistent-xyz/*.conf" matches nothing on this host"#,
                #"3:24 error: directories[1]: "/" is the image root itself"#,
                #"3:29 error: directories[2]: duplicate entry "/var/../tmp", already listed as directories[0]"#,
                "4:1 error: descripton: unknown key in an image file",
            ])
    }

    @Test func withoutHostChecksOnlyTheTextIsJudged() {
        #expect(
            summaries(broken, hostChecks: false) == [
                #"1:45 error: binaries[2]: duplicate entry "/bin/sh", already listed as binaries[0]"#,
                #"1:71 error: binaries[4]: "relative" is a relative path"#,
                #"3:24 error: directories[1]: "/" is the image root itself"#,
                #"3:29 error: directories[2]: duplicate entry "/var/../tmp", already listed as directories[0]"#,
                "4:1 error: descripton: unknown key in an image file",
            ])
    }

    @Test func warningsDoNotBlockTheImage() throws {
        let (image, diagnostics) = SpecLoader.parseImage(
            source: "binaries = [\"/bin/sh\"]\nfiles = [\"/nonexistent-xyz/*\", \"/etc/*wd\"]\ndirectories = [\"/tmp/\"]\n",
            file: "Images/base.toml", name: "base")
        #expect(
            diagnostics.map(\.description) == [
                #"Images/base.toml:2:10: warning: files[0]: glob "/nonexistent-xyz/*" matches nothing on this host; check the pattern, or remove it if nothing is expected"#
            ])
        let spec = try #require(image)
        #expect(
            spec
                == ImageSpec(
                    name: "base", file: "Images/base.toml", binaries: ["/bin/sh"],
                    files: ["/nonexistent-xyz/*", "/etc/*wd"], directories: ["/tmp"], description: nil))
    }

    @Test func missingBinariesKeyAndWrongTypes() {
        #expect(
            summaries("description = 3\nfiles = \"/etc/passwd\"\n", hostChecks: false) == [
                "1:1 error: binaries: missing required key",
                "1:15 error: description: expected a string, found an integer",
                "2:9 error: files: expected an array of strings, found a string",
            ])
        #expect(summaries("binaries = []\n", hostChecks: false) == ["1:12 error: binaries: no binaries listed"])
    }
}
