#if canImport(Glibc)
import Glibc
#endif

/// An flock on `store/.lock` between builds and gc: a build holds it shared from before
/// its tree is written until its image record is saved, gc holds it exclusive. Without
/// it gc removes a tree renamed into the store whose record is not saved yet, the
/// `.tmp-*` objects of a running build, or an object a build just found already there.
struct StoreLock {
    static let file = ".lock"

    enum Mode {
        case shared, exclusive
        var operation: Int32 { self == .shared ? LOCK_SH : LOCK_EX }
    }

    private let fd: Int32

    /// Blocks until the lock is granted.
    init(store: String, _ mode: Mode) throws {
        let path = store + "/" + Self.file
        fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { throw SystemError("open \(path)") }
        while flock(fd, mode.operation) < 0 {
            if errno != EINTR {
                let e = errno
                Glibc.close(fd)
                throw SystemError("flock \(path)", errno: e)
            }
        }
    }

    /// Closing the descriptor drops the lock (it is this open file's alone).
    func release() { _ = Glibc.close(fd) }
}
