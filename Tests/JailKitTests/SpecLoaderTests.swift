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

    @Test func aHostPortIsForwardedByOneJailOnly() throws {
        let jail = { (ports: String) in "image = \"shell\"\ncommand = [\"/bin/sh\"]\n[network]\nmode = \"private\"\nports = [\(ports)]\n" }
        try withSpecDirectory([
            "Images/shell.toml": "binaries = [\"/bin/sh\"]\n",
            "Jails/a.toml": jail("\"8080:80/tcp\", \"127.0.0.1:2222:22/tcp\""),
            "Jails/b.toml": jail("\"8081:80/tcp\", \"8080:8080/tcp\""),
            "Jails/c.toml": jail("\"8080:80/udp\", \"127.0.0.2:2222:22/tcp\""),
            "Jails/d.toml": jail("\"127.0.0.1:2222:22/tcp\""),
        ]) { root in
            let (set, diagnostics) = SpecLoader.load(directory: root, hostChecks: false)
            let lines = diagnostics.map { $0.description.replacingOccurrences(of: root + "/", with: "") }
            #expect(lines == [
                "Jails/b.toml:5:25: error: network.ports[1]: host port 8080/tcp is already forwarded by jail a (network.ports[0] of Jails/a.toml); another host port, or a distinct host address for each",
                "Jails/d.toml:5:10: error: network.ports[0]: host port 2222/tcp is already forwarded by jail a (network.ports[1] of Jails/a.toml); another host port, or a distinct host address for each",
            ])
            #expect(set.jails.keys.sorted() == ["a", "c"])
        }
    }

    @Test func hostPortsFromProcNet() {
        let tcp = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
               1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
               2: 0100007F:0050 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 3 1
            """
        let udp = "  sl  local_address\n   0: 00000000:0035 00000000:0000 07 0\n"
        let tcp6 = "  sl  local_address\n   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 0\n"
        #expect(HostPorts.parse(tcp: tcp, tcp6: tcp6, udp: udp, udp6: "") == [
            HostPorts.Bound(proto: .tcp, address: IPv4Address("127.0.0.1"), port: 8080),
            HostPorts.Bound(proto: .tcp, address: nil, port: 22),
            HostPorts.Bound(proto: .tcp, address: nil, port: 443),
            HostPorts.Bound(proto: .udp, address: nil, port: 53),
        ])
    }
}
