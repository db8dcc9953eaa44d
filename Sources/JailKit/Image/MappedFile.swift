#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only private mapping of a whole file, only alive inside `withMapping`, so no
/// pointer into it can escape and outlive the `munmap`.
struct MappedFile {
    /// The mapped bytes, with bounds-checked little-endian readers: every offset in an ELF
    /// file or in ld.so.cache is attacker-controlled and must never index past the end.
    struct Bytes {
        let buffer: UnsafeRawBufferPointer
        let device: UInt64
        let inode: UInt64

        var count: Int { buffer.count }

        /// `offset + length` without overflow and inside the file, or nil.
        func range(_ offset: UInt64, _ length: UInt64) -> Range<Int>? {
            let (end, overflow) = offset.addingReportingOverflow(length)
            guard !overflow, end <= UInt64(buffer.count) else { return nil }
            return Int(offset)..<Int(end)
        }

        func load<T: FixedWidthInteger>(_ offset: UInt64, as type: T.Type) -> T? {
            guard let r = range(offset, UInt64(MemoryLayout<T>.size)) else { return nil }
            return T(littleEndian: buffer.loadUnaligned(fromByteOffset: r.lowerBound, as: T.self))
        }

        /// NUL-terminated string starting at `offset`, not reading past `limit` (an
        /// exclusive end offset, e.g. the end of a string table).
        func cString(at offset: UInt64, limit: Int? = nil) -> String? {
            let end = min(limit ?? buffer.count, buffer.count)
            guard offset < UInt64(end) else { return nil }
            let start = Int(offset)
            guard let base = buffer.baseAddress, let nul = memchr(base + start, 0, end - start) else { return nil }
            let length = base.distance(to: UnsafeRawPointer(nul)) - start
            return String(decoding: UnsafeRawBufferPointer(start: base + start, count: length), as: UTF8.self)
        }
    }

    enum OpenError: Swift.Error {
        case system(Int32)
        case empty
    }

    static func withMapping<R>(_ path: String, _ body: (Bytes) throws -> R) throws -> R {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OpenError.system(errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw OpenError.system(errno) }
        // Directories and devices open fine but are not objects the loader could map.
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw OpenError.system(EISDIR) }
        guard st.st_size > 0 else { throw OpenError.empty }
        let size = Int(st.st_size)
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw OpenError.system(errno)
        }
        defer { munmap(base, size) }
        let bytes = Bytes(
            buffer: UnsafeRawBufferPointer(start: base, count: size),
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        return try body(bytes)
    }
}
