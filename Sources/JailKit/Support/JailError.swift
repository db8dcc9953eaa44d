#if canImport(Glibc)
import Glibc
#endif

/// The one public error of JailKit: what failed, for which jail, and why, in words a
/// sysadmin can act on. Lower layers throw their own errors; they are wrapped here with
/// the context they travelled through.
public struct JailError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case invalidSpec, notFound, alreadyRunning, launchFailed, system, image, state, busy
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// A failed system call, with the stage it failed in (`mkdir /var/lib/jailctl/run`).
/// errno is captured at the throw site, before anything can overwrite it.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var stage: String
    public var errno: Int32

    public init(_ stage: String, errno: Int32 = Glibc.errno) {
        self.stage = stage
        self.errno = errno
    }

    public var description: String { "\(stage): \(strerrorString(errno))" }
}

public func strerrorString(_ e: Int32) -> String {
    guard let s = strerror(e) else { return "errno \(e)" }
    return String(cString: s)
}

/// Runs a system call returning -1 on failure and throws with the stage named.
@discardableResult
func check(_ stage: @autoclosure () -> String, _ rc: Int32) throws -> Int32 {
    if rc < 0 { throw SystemError(stage(), errno: errno) }
    return rc
}
