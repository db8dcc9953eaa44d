#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch
import Logging

/// Forwards on the host's `[::1]`, relayed in user space.
///
/// IPv6 has no `route_localnet`: the kernel refuses a packet with source ::1 on any
/// interface but lo, and a jail's reply that conntrack turns back into ::1 arrives on
/// the jail's veth and is dropped by the strict route lookup for loopback addresses; a
/// DNAT plus masquerade, which is how 127.0.0.1 forwards work, therefore never completes
/// a connection (tested: the SYN reaches the jail, the SYN-ACK dies at the host). Docker
/// (docker-proxy) and Podman (rootlessport) relay such ports in user space too. The relay
/// is one small C process per jail (`jl_relay.c`): it listens on [::1]:HOSTPORT, connects
/// to the jail's address (IPv6, else IPv4) and copies bytes; it ends with the jail. The
/// jail sees the host side of its link as the client, not ::1.
public struct Relay6: Sendable, Equatable {
    public var pid: Int32
    public var startTime: UInt64

    /// Starts the relay for the jail's [::1] forwards; nil when it has none. The
    /// listening sockets are made here, so a taken port is this call's error.
    public static func start(for jail: NetworkJail, hostNetns: String?, jailPid: Int32) throws -> Relay6? {
        let forwards = jail.ports.filter(\.isIPv6Loopback)
        if forwards.isEmpty { return nil }
        // jl_relay.c keeps its listeners in a fixed array (no allocation after fork).
        guard forwards.count <= 32 else {
            throw JailError(.invalidSpec, "jail \(jail.name): \(forwards.count) [::1] forwards; one relay serves at most 32")
        }
        var nsfd: Int32 = -1
        if let hostNetns {
            nsfd = open(hostNetns, O_RDONLY | O_CLOEXEC)
            if nsfd < 0 { throw SystemError("open \(hostNetns)") }
        }
        defer { if nsfd >= 0 { close(nsfd) } }
        var listeners: [Int32] = []
        defer { for fd in listeners { close(fd) } }
        var targets: [jl_relay_target] = []
        for p in forwards {
            let fd = jl_relay_listen(nsfd, p.hostPort)
            if fd < 0 {
                let why = -fd == EADDRINUSE ? "in use by a host process or another jail" : strerrorString(-fd)
                throw JailError(.busy, "jail \(jail.name): [::1]:\(p.hostPort)/tcp is \(why)")
            }
            listeners.append(fd)
            var t = jl_relay_target()
            let bytes: [UInt8]
            if let a6 = jail.address6 {
                t.family = AF_INET6
                bytes = a6.bytes
            } else {
                t.family = AF_INET
                let v = jail.address.value
                bytes = [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)]
            }
            withUnsafeMutableBytes(of: &t.address) { dst in for (i, b) in bytes.enumerated() { dst[i] = b } }
            t.port = p.jailPort
            targets.append(t)
        }
        let pid = jl_relay_start(listeners, targets, Int32(targets.count), nsfd, jailPid)
        if pid < 0 { throw SystemError("jail \(jail.name): starting the [::1] relay", errno: -pid) }
        return Relay6(pid: pid, startTime: jl_proc_start_time(pid))
    }

    /// "PID STARTTIME", as kept in the jail's run directory.
    public var record: String { "\(pid) \(startTime)\n" }

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    public init?(record: String) {
        let f = record.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard f.count == 2, let pid = Int32(f[0]), let st = UInt64(f[1]) else { return nil }
        self.init(pid: pid, startTime: st)
    }

    /// The recorded process still runs (not replaced, not a zombie waiting for init).
    public var isRunning: Bool {
        guard jl_proc_start_time(pid) == startTime, let stat = try? FS.readText("/proc/\(pid)/stat") else { return false }
        // "PID (comm) STATE ...": the state follows the last ')'.
        return stat.split(separator: ")").last?.split(separator: " ").first != "Z"
    }

    /// SIGTERM, and waits until it is gone so that its ports are free for the next `up`;
    /// a relay already gone is fine. One still there after the wait is logged (its ports
    /// stay taken until it ends).
    public func stop(logger: Logger? = nil) {
        let fd = jl_pidfd_open(pid)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard jl_proc_start_time(pid) == startTime else { return }
        let sent = jl_pidfd_send_signal(fd, SIGTERM)
        if sent < 0 && sent != -ESRCH { logger?.error("[::1] relay \(pid): SIGTERM: \(strerrorString(-sent))") }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var rc: Int32
        repeat { rc = poll(&p, 1, 2000) } while rc < 0 && errno == EINTR
        if rc <= 0 {
            logger?.error("[::1] relay \(pid) still runs 2 s after SIGTERM; its ports stay taken until it ends")
        }
    }
}
