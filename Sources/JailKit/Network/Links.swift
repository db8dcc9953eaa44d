#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

/// Interface names and the netlink socket of one net namespace.
public enum Links {
    /// "jc" + four hex digits of the instance: every host-side veth of an instance starts
    /// with it, which is how teardown and the leak check find them.
    public static func interfacePrefix(instance: String) -> String {
        let hex = instance.filter(\.isHexDigit)
        return "jc" + String((hex + "0000").prefix(4))
    }

    /// Prefix + six random hex digits (12 characters, under IFNAMSIZ): unique per launch,
    /// so an immediate re-`up` never collides with a veth the kernel is still tearing
    /// down with the old namespace.
    public static func interfaceName(instance: String) -> String {
        let n = UInt32.random(in: 0..<(1 << 24))
        let hex = String(n, radix: 16)
        return interfacePrefix(instance: instance) + String(repeating: "0", count: 6 - hex.count) + hex
    }
}

/// A NETLINK_ROUTE socket bound to one net namespace.
final class NetlinkSocket {
    let fd: Int32
    let namespace: String

    /// `netnsPath`: a namespace file (/proc/PID/ns/net, /run/netns/NAME); nil: the
    /// caller's own.
    init(netnsPath: String?) throws {
        var nsfd: Int32 = -1
        if let netnsPath {
            nsfd = open(netnsPath, O_RDONLY | O_CLOEXEC)
            if nsfd < 0 { throw SystemError("open \(netnsPath)") }
        }
        defer { if nsfd >= 0 { close(nsfd) } }
        let rc = jl_nl_open(nsfd)
        if rc < 0 { throw SystemError("netlink socket in \(netnsPath ?? "this namespace")", errno: -rc) }
        fd = rc
        namespace = netnsPath ?? "this namespace"
    }

    deinit { close(fd) }

    func check(_ what: @autoclosure () -> String, _ rc: Int32) throws {
        if rc < 0 { throw SystemError(what(), errno: -rc) }
    }

    func ifindex(_ name: String) throws -> Int32 {
        let rc = jl_nl_ifindex(fd, name)
        try check("link \(name) in \(namespace)", rc)
        return rc
    }

    func addAddress(_ a: IPv4Address, prefix: Int, ifindex: Int32, name: String) throws {
        try check("address \(a)/\(prefix) on \(name)", jl_nl_addr_add(fd, ifindex, a.value, Int32(prefix)))
    }

    func addAddress6(_ a: IPv6Address, prefix: Int, ifindex: Int32, name: String) throws {
        let rc = a.bytes.withUnsafeBufferPointer { jl_nl_addr6_add(fd, ifindex, $0.baseAddress, Int32(prefix)) }
        try check("address \(a)/\(prefix) on \(name)", rc)
    }

    /// True when it was there.
    func deleteLink(_ name: String) throws -> Bool {
        let rc = jl_nl_link_del(fd, name)
        if rc == -ENODEV { return false }
        try check("delete link \(name)", rc)
        return true
    }

    func links(prefix: String) throws -> [String] {
        var size = 1 << 16
        while true {
            var buf = [CChar](repeating: 0, count: size)
            let rc = jl_nl_list_links(fd, prefix, &buf, buf.count)
            if rc == -ENOSPC && size < 1 << 24 { size *= 4; continue }
            try check("listing links", rc)
            let text = buf.withUnsafeBufferPointer { p in p.baseAddress.map { String(cString: $0) } ?? "" }
            return text.split(separator: "\n").map(String.init)
        }
    }
}
