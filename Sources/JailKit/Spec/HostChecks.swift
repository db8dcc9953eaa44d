#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few questions the spec layer asks the host filesystem. Kept apart so that
/// `hostChecks: false` can skip all of them and unit tests stay independent of the machine.
enum HostChecks {
    enum ProgramProblem: Equatable {
        case missing
        case notRegularFile
        case notELF
    }

    /// Follows symlinks (`/bin/sh` → dash): the image gets the program, not the link.
    static func programProblem(_ path: String) -> ProgramProblem? {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .notRegularFile }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .missing }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        let count = magic.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4) }
        return count == 4 && magic == [0x7F, 0x45, 0x4C, 0x46] ? nil : .notELF
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// Number of host paths matching a glob(3) pattern.
    static func globMatches(_ pattern: String) -> Int {
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(pattern, 0, nil, &result) == 0 else { return 0 }
        return Int(result.gl_pathc)
    }
}
