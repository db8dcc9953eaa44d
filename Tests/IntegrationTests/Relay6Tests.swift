import CJailLaunch
import Glibc
import Testing

@testable import JailKit

/// The [::1] relay process on its own, in the host's namespace: the "jail" is a server on
/// [::1] in this process (relay [::1]:18620 -> [::1]:18621), so each test controls both
/// ends. Ports 18620-18629.
@Suite("[::1] relay (root)", .serialized)
struct Relay6Tests {
    static let front: UInt16 = 18620
    static let back: UInt16 = 18621

    func startRelay() throws -> Relay6 {
        let jail = NetworkJail(name: "relaytest", address: IPv4Address(0x7f00_0001), address6: .loopback, hostInterface: "lo",
                               ports: [PortForward(hostAddress: .v6(.loopback), hostPort: Self.front, jailPort: Self.back, proto: .tcp)])
        return try #require(try Relay6.start(for: jail, hostNetns: nil, jailPid: 0))
    }

    func socket6(rcvbuf: Int32? = nil, sndbuf: Int32? = nil) throws -> Int32 {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        if var r = rcvbuf { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &r, 4) }
        if var s = sndbuf { setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &s, 4) }
        return fd
    }

    func address(_ port: UInt16) -> sockaddr_in6 {
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        a.sin6_port = port.bigEndian
        a.sin6_addr = in6addr_loopback
        return a
    }

    /// A listening "jail" on [::1]:back with a small receive buffer (inherited by what it accepts).
    func jailServer() throws -> Int32 {
        let fd = try socket6(rcvbuf: 4096)
        var a = address(Self.back)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        if ok < 0 || listen(fd, 8) < 0 { throw SystemError("bind/listen [::1]:\(Self.back)") }
        return fd
    }

    func connectFront(sndbuf: Int32? = nil, rcvbuf: Int32? = nil) throws -> Int32 {
        let fd = try socket6(rcvbuf: rcvbuf, sndbuf: sndbuf)
        var a = address(Self.front)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        if ok < 0 { throw SystemError("connect [::1]:\(Self.front)") }
        return fd
    }

    /// Sends without blocking until `limit` bytes went or nothing moves for 300 ms.
    func flood(_ fd: Int32, limit: Int) -> Int {
        let chunk = [UInt8](repeating: 0x61, count: 65536)
        var sent = 0
        var stalled = monotonic()
        while sent < limit && monotonic() - stalled < 0.3 {
            let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, min(chunk.count, limit - sent), Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
                stalled = monotonic()
            } else {
                usleep(5_000)
            }
        }
        return sent
    }

    /// Bytes `fd` has not had acknowledged yet (SIOCOUTQ).
    func unacknowledged(_ fd: Int32) -> Int32 {
        var n: Int32 = -1
        _ = ioctl(fd, UInt(TIOCOUTQ), &n)
        return n
    }

    /// Reads `reader` a little at a time until everything `writer` sent is in the other
    /// socket buffers (a FIN from `writer` then arrives at once, rather than behind data
    /// that waits for window); the bytes read.
    func unblock(reader: Int32, writer: Int32) -> Int {
        var buf = [UInt8](repeating: 0, count: 4096)
        var total = 0
        let end = monotonic() + 3
        while unacknowledged(writer) != 0 && monotonic() < end {
            let n = buf.withUnsafeMutableBytes { recv(reader, $0.baseAddress, 4096, Int32(MSG_DONTWAIT)) }
            if n > 0 { total += n } else { usleep(2_000) }
        }
        return total
    }

    /// Reads until end of file (blocking); the byte count.
    func drain(_ fd: Int32) -> Int {
        var buf = [UInt8](repeating: 0, count: 65536)
        var total = 0
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
            if n <= 0 { return total }
            total += n
        }
    }

    /// utime + stime in clock ticks.
    func cpuTicks(_ pid: Int32) throws -> Int {
        let stat = try FS.readText("/proc/\(pid)/stat")
        let fields = (stat.split(separator: ")").last ?? "").split(separator: " ")
        // After "(comm)": state is field 3, utime 14, stime 15.
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    /// The relay's test connections as the kernel sees them, for failure messages.
    func sockets() -> String {
        let lines = ((try? FS.readText("/proc/net/tcp6")) ?? "").split(separator: "\n")
        return lines.filter { $0.contains(":48BC") || $0.contains(":48BD") }.joined(separator: "\n")
    }

    func openFds(_ pid: Int32) -> Int { (try? FS.list("/proc/\(pid)/fd").count) ?? -1 }

    func waitFor(_ seconds: Double, _ done: () -> Bool) -> Bool {
        let end = monotonic() + seconds
        while !done() && monotonic() < end { usleep(20_000) }
        return done()
    }

    /// The jail shuts its write side at once and never reads; the client uploads more
    /// than the buffers hold and closes. The relay must not spin on the client's hang-up.
    @Test func stalledUploadAfterHangUpDoesNotSpin() throws {
        try requireRoot()
        let server = try jailServer()
        defer { close(server) }
        let relay = try startRelay()
        defer { relay.stop() }
        let idle = 5  // stdin, stdout, stderr, its listener, the pidfd
        let client = try connectFront(sndbuf: 4096)
        let jail = accept(server, nil, nil)
        try #require(jail >= 0)
        shutdown(jail, Int32(SHUT_WR))
        // The relay passes the jail's end of file on before the client closes.
        #expect(drain(client) == 0)
        let sent = flood(client, limit: 4 << 20)
        #expect(sent > 0 && sent < 4 << 20, "the upload must stall (\(sent) bytes went)")
        // The jail reads just enough for the client's end of file to reach the relay,
        // whose side then has both directions shut (POLLHUP) while the upload waits.
        let early = unblock(reader: jail, writer: client)
        #expect(unacknowledged(client) == 0)
        close(client)
        usleep(100_000)
        let before = try cpuTicks(relay.pid)
        usleep(1_000_000)
        let used = try cpuTicks(relay.pid) - before
        #expect(used <= 2, "relay used \(used) ticks in 1 s")
        // The jail reads at last: every byte arrives, then the client's end of file, and
        // the pair goes. (Not a close with the upload unread: the reset that sends can be
        // dropped by another test's firewall in this namespace, leaving the pair to its
        // idle timeout.)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(jail, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        #expect(early + drain(jail) == sent)
        close(jail)
        #expect(waitFor(2) { openFds(relay.pid) == idle }, "relay fds \(openFds(relay.pid)), idle \(idle)\n\(sockets())")
        #expect(relay.isRunning)
    }

    /// Mirror case: the client half-closes and does not read for a while; the jail sends a
    /// large reply and closes. No spin meanwhile, and the client then gets every byte.
    @Test func largeReplyToSlowHalfClosedClient() throws {
        try requireRoot()
        let server = try jailServer()
        defer { close(server) }
        let relay = try startRelay()
        defer { relay.stop() }
        let idle = 5  // stdin, stdout, stderr, its listener, the pidfd
        let client = try connectFront(rcvbuf: 4096)
        defer { close(client) }
        let jail = accept(server, nil, nil)
        try #require(jail >= 0)
        shutdown(client, Int32(SHUT_WR))
        let sent = flood(jail, limit: 4 << 20)
        let early = unblock(reader: client, writer: jail)
        #expect(unacknowledged(jail) == 0)
        close(jail)
        usleep(100_000)
        let before = try cpuTicks(relay.pid)
        usleep(1_000_000)
        let used = try cpuTicks(relay.pid) - before
        #expect(used <= 2, "relay used \(used) ticks in 1 s")
        #expect(early + drain(client) == sent)
        #expect(waitFor(2) { openFds(relay.pid) == idle }, "relay fds \(openFds(relay.pid)), idle \(idle)\n\(sockets())")
    }

    /// After its set-up the relay is nobody, with no capability and no way to gain one;
    /// its soft descriptor limit is the hard one.
    @Test func relayRunsUnprivileged() throws {
        try requireRoot()
        // A soft limit at or below 1000 once made the relay's set-up fail after `up`
        // had reported success.
        var saved = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &saved)
        var low = saved
        low.rlim_cur = min(512, saved.rlim_max)
        setrlimit(RLIMIT_NOFILE_VALUE, &low)
        defer { setrlimit(RLIMIT_NOFILE_VALUE, &saved) }
        let relay = try startRelay()
        defer { relay.stop() }
        setrlimit(RLIMIT_NOFILE_VALUE, &saved)
        let status = try FS.readText("/proc/\(relay.pid)/status")
        func field(_ name: String) -> String {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) } ?? ""
        }
        #expect(field("Uid").split(separator: "\t") == ["65534", "65534", "65534", "65534"])
        #expect(field("Gid").split(separator: "\t") == ["65534", "65534", "65534", "65534"])
        #expect(field("Groups") == "")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] { #expect(field(set) == "0000000000000000", "\(set)") }
        #expect(field("NoNewPrivs") == "1")
        let limits = try FS.readText("/proc/\(relay.pid)/limits")
        let files = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?.split(separator: " ", omittingEmptySubsequences: true)
        #expect(files?.count ?? 0 >= 5 && files?[3] == files?[4], "\(files ?? [])")
        // And it still relays.
        let server = try jailServer()
        defer { close(server) }
        let client = try connectFront()
        defer { close(client) }
        let jail = accept(server, nil, nil)
        try #require(jail >= 0)
        defer { close(jail) }
        #expect(send(client, "ping", 4, 0) == 4)
        var buf = [UInt8](repeating: 0, count: 4)
        #expect(buf.withUnsafeMutableBytes { recv(jail, $0.baseAddress, 4, Int32(MSG_WAITALL)) } == 4)
    }

    /// A set-up failure in the relay process is jl_relay_start's error, not a dead relay.
    @Test func setupFailureIsReported() throws {
        try requireRoot()
        let listener = jl_relay_listen(-1, Self.front)
        try #require(listener >= 0)
        defer { close(listener) }
        let notNetns = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(notNetns) }
        var target = jl_relay_target()
        target.family = AF_INET6
        target.port = Self.back
        var fds = [listener]
        let rc = jl_relay_start(&fds, &target, 1, notNetns, 0)
        #expect(rc == -EINVAL, "setns into /dev/null: \(rc)")
    }
}

private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
