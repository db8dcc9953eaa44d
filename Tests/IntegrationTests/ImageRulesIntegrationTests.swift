import Glibc
import Testing

@testable import JailKit

/// Images built by the built-in rules, run in real jails: the PHP extensions, NSS and
/// PAM files the programs load at run time are there and work.
@Suite("Image rules in jails (root)", .serialized)
struct ImageRulesIntegrationTests {
    func hostOutput(_ command: String) -> String {
        guard let p = popen(command, "r") else { return "" }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, p)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        pclose(p)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func phpModulesMatchTheHost() throws {
        guard FS.exists("/usr/bin/php8.2") else { return }
        let f = try JailFixture("imgphp")
        defer { f.cleanUp() }
        try f.image("php", """
            binaries = ["/usr/bin/php8.2", "/bin/sleep", "/bin/date"]
            """)
        try f.jail("php", """
            image = "php"
            command = ["/bin/sleep", "3600"]
            user = "www-data"
            stop_timeout = 2
            """)
        _ = try f.manager.up("php")
        let (status, inside) = try f.exec("php", ["/usr/bin/php8.2", "-m"])
        #expect(status == 0)
        #expect(inside == hostOutput("/usr/bin/php8.2 -m"))
        let (_, iconv) = try f.exec("php", ["/usr/bin/php8.2", "-r", #"echo bin2hex(iconv("UTF-8","ISO-8859-1//TRANSLIT","é"));"#])
        #expect(iconv == "e9")
        let (_, name) = try f.exec("php", ["/usr/bin/php8.2", "-r", #"echo posix_getpwuid(posix_geteuid())["name"];"#])
        #expect(name == "www-data")
        let (_, date) = try f.exec("php", ["/bin/date", "+%Z"])
        #expect(date == hostOutput("/bin/date +%Z"))
    }

    @Test func sshdImageResolvesItsUsersOnly() throws {
        guard case .installed = try DpkgDatabase().lookup("openssh-server") else { return }
        let f = try JailFixture("imgssh")
        defer { f.cleanUp() }
        try f.image("ssh", """
            packages = ["rsync", "openssh-server"]
            binaries = ["/usr/bin/id", "/usr/bin/getent", "/bin/sleep"]
            directories = ["/run/sshd"]
            """)
        try f.jail("ssh", """
            image = "ssh"
            command = ["/bin/sleep", "3600"]
            user = "www-data"
            stop_timeout = 2
            """)
        _ = try f.manager.up("ssh")
        let (s1, id) = try f.exec("ssh", ["/usr/bin/id"])
        #expect(s1 == 0)
        #expect(id.hasPrefix("uid=33(www-data) gid=33(www-data)"))
        let (s2, pw) = try f.exec("ssh", ["/usr/bin/getent", "passwd", "www-data"])
        #expect(s2 == 0)
        #expect(pw.hasPrefix("www-data:x:33:33:"))
        let (_, all) = try f.exec("ssh", ["/usr/bin/getent", "passwd"])
        #expect(all.split(separator: "\n").map { $0.split(separator: ":")[0] }.sorted() == ["nobody", "root", "www-data"])
        let (s3, _) = try f.exec("ssh", ["/usr/bin/rsync", "--version"])
        #expect(s3 == 0)
        // Nothing of the host's shadow in the image.
        let image = try #require(try f.manager.images.path(of: "ssh")).1
        let shadow = (try? FS.readText(image + "/etc/shadow")) ?? ""
        #expect(!shadow.contains("$"))
    }
}
