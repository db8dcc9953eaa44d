import Foundation
import Testing

@testable import JailKit

/// Whole spec directories: cross-file checks and the repository's own examples.
@Suite struct SpecLoaderTests {
    /// A fresh directory with the given files (relative path → content), removed afterwards.
    func withSpecDirectory(_ files: [String: String], _ body: (String) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("spec-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (relative, content) in files {
            let path = root + "/" + relative
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: path, atomically: true, encoding: .utf8)
        }
        try body(root)
    }

    @Test func repositoryExamplesLoadCleanly() throws {
        // Tests/JailKitTests/SpecLoaderTests.swift → package root, which holds Images/ and Jails/.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let (set, diagnostics) = SpecLoader.load(directory: root)
        #expect(diagnostics.map(\.description) == [])
        let shell = try #require(set.images["shell"])
        #expect(shell.binaries.count == 13)
        let hello = try #require(set.jails["hello"])
        #expect(hello.image == "shell")
        #expect(hello.command.first == "/bin/sh")
        #expect(hello.user == .name("root"))
        #expect(hello.stopSignal == 15)
        #expect(hello.stopTimeout == 5)
        #expect(hello.hostname == "hello")
    }

    @Test func jailNamingAMissingImage() throws {
        try withSpecDirectory([
            "Images/shell.toml": "binaries = [\"/bin/sh\"]\n",
            "Images/broken.toml": "binaries = \n",
            "Jails/a.toml": "image = \"shel\"\ncommand = [\"/bin/sh\"]\n",
            "Jails/b.toml": "image = \"shell\"\ncommand = [\"/bin/sh\"]\n",
            "Jails/c.toml": "command = [\"/bin/sh\"]\nimage = \"broken\"\n",
            "Jails/Bad.toml": "image = \"nothing\"\ncommand = [\"/bin/sh\"]\n",
            "Jails/notes.txt": "not a spec",
        ]) { root in
            let (set, diagnostics) = SpecLoader.load(directory: root, hostChecks: false)
            let lines = diagnostics.map { $0.description.replacingOccurrences(of: root + "/", with: "") }
            #expect(lines.count == 5)
            #expect(lines.contains { $0.hasPrefix("Images/broken.toml:1:") && $0.contains("TOML syntax error") })
            #expect(
                lines.contains(
                    #"Jails/a.toml:1:9: error: image: no image "shel" (no file Images/shel.toml); did you mean "shell"?"#))
            #expect(
                lines.contains(
                    #"Jails/Bad.toml:1:1: error: name: "Bad" is not a valid name (taken from the file name); a name is 1-31 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"#
                ))
            #expect(
                lines.contains(
                    #"Jails/Bad.toml:1:9: error: image: no image "nothing" (no file Images/nothing.toml); defined images: broken, shell"#))
            // c names an image whose file exists but is broken: not "missing", but refused.
            #expect(lines.contains(#"Jails/c.toml:2:9: error: image: image "broken" has errors; fix Images/broken.toml first"#))
            #expect(Set(set.images.keys) == ["shell"])
            #expect(Set(set.jails.keys) == ["b"])
        }
    }

    @Test func notASpecDirectory() {
        let (set, diagnostics) = SpecLoader.load(directory: "/nonexistent-spec-dir")
        #expect(set == SpecSet())
        #expect(diagnostics.count == 1)
        #expect(diagnostics.first?.description.hasPrefix("/nonexistent-spec-dir:1:1: error: not a spec directory") == true)
    }
}
