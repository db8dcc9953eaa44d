import Foundation
import Glibc
import Testing

@testable import JailKit

/// Shared hosting for real: the repository's own `Images/php-fpm.toml` and
/// `Jails/php-tenant@.toml`, tenants added through `TenantManager`, and an nginx master of
/// the test's own (own config, pid file and logs under the test directory; never the
/// host's nginx service), serving each tenant from `tenant nginx-config`'s server block.
final class HostingFixture {
    let dir: TempDir
    let manager: JailManager
    let tenants: TenantManager
    var specs: String { dir.path + "/specs" }
    var nginxPid: pid_t = 0
    let port: UInt16
    let listen: String

    static let repo = Probe.tests + "/.."

    /// `listen`: the address nginx listens on (127.0.0.1 unless a test made another).
    /// `pool`: the suite's own part of this checkout's 10.90.0.0/24, so suites running
    /// in parallel (each with its own state database) never lease the same address.
    init(_ tag: String, port: UInt16, pool: String, listen: String = "127.0.0.1",
         templateEdit: (String) -> String = { $0 }) throws {
        try requireRoot()
        dir = try TempDir(tag)
        self.port = port
        self.listen = listen
        let specs = dir.path + "/specs"
        try FS.mkdirs(specs + "/Images")
        try FS.mkdirs(specs + "/Jails")
        // Private networks of this checkout's tests come from their own pool.
        try FS.writeAtomically(specs + "/jailctl.toml", "[network]\npool = \"\(pool)\"\n")
        try FS.writeAtomically(specs + "/Images/php-fpm.toml", try FS.readText(Self.repo + "/Images/php-fpm.toml"))
        try FS.writeAtomically(specs + "/Jails/php-tenant@.toml", templateEdit(try FS.readText(Self.repo + "/Jails/php-tenant@.toml")))
        manager = try JailManager(root: StateRoot(path: dir.path + "/state"), specsDirectory: specs)
        tenants = TenantManager(jails: manager)
    }

    /// Adds a tenant whose site is `files` (path → content) in its web root, owned by it.
    @discardableResult
    func addTenant(_ name: String, files: [String: String], options: TenantOptions = TenantOptions()) throws -> TenantInfo {
        var o = options
        o.domain = o.domain ?? name + ".test"
        let info = try tenants.add(name, options: o)
        let uid = try #require(info.hostUid), gid = try #require(info.hostGid)
        for (path, text) in files.sorted(by: { $0.key < $1.key }) {
            let full = info.webroot + "/" + path
            let parent = String(full[..<(full.lastIndex(of: "/") ?? full.endIndex)])
            try FS.mkdirs(parent, mode: 0o755)
            try FS.writeAtomically(full, text)
            #expect(chown(full, uid, gid) == 0)
            if parent != info.webroot { #expect(chown(parent, uid, gid) == 0) }
        }
        return info
    }

    /// Starts the test's own nginx with every tenant's server block.
    func startNginx() throws {
        let conf = dir.path + "/nginx"
        try FS.mkdirs(conf + "/sites")
        try FS.mkdirs(conf + "/tmp")
        for t in try tenants.list() {
            try FS.writeAtomically(conf + "/sites/\(t.name).conf", try tenants.nginxConfig(t.name, listen: "\(listen):\(port)"))
        }
        try FS.writeAtomically(conf + "/nginx.conf", """
            user www-data www-data;
            worker_processes 1;
            pid \(conf)/nginx.pid;
            error_log \(conf)/error.log warn;
            events { worker_connections 256; }
            http {
                access_log off;
                types { text/plain txt; text/html html; }
                default_type application/octet-stream;
                client_body_temp_path \(conf)/tmp/body;
                fastcgi_temp_path \(conf)/tmp/fastcgi;
                proxy_temp_path \(conf)/tmp/proxy;
                uwsgi_temp_path \(conf)/tmp/uwsgi;
                scgi_temp_path \(conf)/tmp/scgi;
                include \(conf)/sites/*.conf;
            }
            """)
        nginxPid = try spawn(["/usr/sbin/nginx", "-e", conf + "/error.log", "-c", conf + "/nginx.conf", "-g", "daemon off;"],
                             env: [], appendTo: conf + "/stdout.log")
        let deadline = monotonic() + 10
        while monotonic() < deadline {
            if Self.connects(listen, port) { return }
            usleep(20_000)
        }
        Issue.record("nginx did not listen on \(listen):\(port): \((try? FS.readText(conf + "/error.log")) ?? "")")
    }

    static func connects(_ address: String, _ port: UInt16) -> Bool {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { return false }
        defer { close(s) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        inet_pton(AF_INET, address, &a.sin_addr)
        return withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    var http: HTTPClient { HTTPClient(address: listen, port: port) }

    func get(_ host: String, _ path: String, timeout: Int = 15) -> HTTPClient.Response? {
        http.get(host, path, timeout: timeout)
    }

    /// `count` requests at the same moment, each from a curl process of its own (a load
    /// that does not depend on how this process schedules its threads); returns
    /// "STATUS BODY" of each once all are done.
    func getConcurrently(_ host: String, _ path: String, count: Int) throws -> [String] {
        try startRequests(host, path, count: count).map { $0() }
    }

    /// Starts `count` curl processes at once; each returned closure waits for its one.
    func startRequests(_ host: String, _ path: String, count: Int) throws -> [() -> String] {
        var pids: [(pid_t, String)] = []
        for i in 0..<count {
            let out = dir.path + "/concurrent-\(UInt32.random(in: 0..<UInt32.max))-\(i)"
            let pid = try spawn(["/usr/bin/curl", "-s", "-m", "30", "-w", " %{http_code}", "-H", "Host: \(host)",
                                 "http://\(listen):\(port)\(path)"], env: [], appendTo: out)
            pids.append((pid, out))
        }
        return pids.map { pid, out in
            {
                var st: Int32 = 0
                waitpid(pid, &st, 0)
                return ((try? FS.readText(out)) ?? "").split(separator: "\n").last.map(String.init) ?? ""
            }
        }
    }

    /// Host processes of a tenant's pool (php-fpm names its workers "pool NAME").
    func workers(of tenant: String) -> [(pid: Int32, uid: UInt32)] {
        ((try? FS.list("/proc")) ?? []).compactMap { p -> (Int32, UInt32)? in
            guard let pid = Int32(p), let cmd = try? FS.readText("/proc/\(p)/cmdline"),
                  cmd.hasPrefix("php-fpm: pool \(tenant)"),
                  let status = try? FS.readText("/proc/\(p)/status"),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
                  let uid = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap({ UInt32($0) })
            else { return nil }
            return (pid, uid)
        }
    }

    func cleanUp() {
        if nginxPid > 0 {
            kill(nginxPid, SIGQUIT)
            var st: Int32 = 0
            let deadline = monotonic() + 5
            while waitpid(nginxPid, &st, WNOHANG) == 0 {
                if monotonic() > deadline {
                    kill(nginxPid, SIGKILL)
                    waitpid(nginxPid, &st, 0)
                    break
                }
                usleep(20_000)
            }
        }
        for s in (try? manager.statuses()) ?? [] where s.state == .running {
            do { _ = try manager.down(s.name, timeout: 3) } catch { Issue.record("down \(s.name): \(error)") }
        }
        recordLeftoverCgroups(manager)
        dir.remove()
    }
}

/// Runs argv and returns (exit status, stdout).
func capture(_ argv: [String]) -> (Int32, String) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return (-1, "") }
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    let cargs = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var attr = cleanSpawnAttributes()
    defer { posix_spawnattr_destroy(&attr) }
    let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargs, environ)
    close(fds[1])
    guard rc == 0 else {
        close(fds[0])
        return (-1, "")
    }
    let out = readPipe(fds[0])
    close(fds[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), out)
}

/// A minimal HTTP/1.0 client, so tests measure nginx and PHP, not a curl process start.
struct HTTPClient: Sendable {
    let address: String
    let port: UInt16

    struct Response {
        var status: Int
        var body: String
    }

    /// GET (or POST) through the test's nginx on 127.0.0.1, with the tenant's Host header.
    func get(_ host: String, _ path: String, timeout: Int = 15) -> Response? {
        guard let s = tcpConnect(address, port, timeout: timeout) else { return nil }
        defer { close(s) }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ FS.writeAll(s, $0.baseAddress, $0.count) }) else { return nil }
        let raw = readPipe(s)
        guard let split = raw.range(of: "\r\n\r\n") else { return nil }
        let head = raw[..<split.lowerBound]
        let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return Response(status: status, body: String(raw[split.upperBound...]))
    }

}

/// A value several threads of a test write to.
final class Locked<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
