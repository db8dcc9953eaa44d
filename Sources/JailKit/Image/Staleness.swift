#if canImport(Glibc)
import Glibc
#endif
import Crypto

/// Identity of a host file at build time: device, inode, size and mtime. Equal
/// fingerprints mean the file was not replaced or written since (short of someone
/// resetting mtime on purpose), so a check only hashes files whose fingerprint moved.
struct SourceFingerprint: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var seconds: Int
    var nanoseconds: Int
    var isDirectory: Bool

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        seconds = Int(st.st_mtim.tv_sec)
        nanoseconds = Int(st.st_mtim.tv_nsec)
        isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// lstat: sources are read with O_NOFOLLOW, so a link put in place of a file is a change.
    init?(path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        self.init(st)
    }

    /// "dev:ino:sec.nsec", as in the manifest (size has its own column).
    var origin: String { "\(device):\(inode):\(seconds).\(nanoseconds)" }

    /// Content digest: a file's SHA-256; a directory's is that of its sorted entry names
    /// (what a scan of it, like PHP's conf.d, would see); a symlink's, of its target.
    func digest(of path: String) throws -> String {
        if isDirectory {
            return hexDigest(SHA256.hash(data: Array(try FS.list(path).sorted().joined(separator: "\n").utf8)))
        }
        if let target = RuleContext.readLink(path) {
            return hexDigest(SHA256.hash(data: Array(("link:" + target).utf8)))
        }
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw SystemError("open \(path)") }
        defer { close(fd) }
        var hasher = SHA256()
        let bufSize = 1 << 18
        let buf = UnsafeMutableRawPointer.allocate(byteCount: bufSize, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf, bufSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read \(path)")
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buf, count: n))
        }
        return hexDigest(hasher.finalize())
    }
}

/// A host file an image was built from that is no longer what was copied or read.
public struct ChangedSource: Sendable, Equatable, CustomStringConvertible {
    public enum Change: String, Sendable {
        /// Content differs from what the image holds.
        case modified
        /// Gone from the host (or no longer readable).
        case missing
        /// A value that decided the plan (the users of its jails) differs.
        case parameter
    }

    /// Host path (or parameter name).
    public var source: String
    /// Where the image holds it; nil for inputs that were read, not copied.
    public var imagePath: String?
    public var change: Change

    public var description: String {
        let at = imagePath.map { $0 == source ? "" : " (image \($0))" } ?? ""
        return "\(change.rawValue)\t\(source)\(at)"
    }
}

/// Compares a manifest with the host. The fast path is one lstat per recorded file; only
/// files whose fingerprint moved are hashed, and a file with the same content is not a
/// change (a touch, a reinstall of the same version). Lines are read as bytes and the
/// recorded fingerprint compared as numbers: a no-op check of a php image (1,500 lines)
/// stays a few milliseconds, not the 15 that splitting Strings into Characters took.
public enum Staleness {
    public static func check(manifest: String, parameters: [String: String]? = nil) -> [ChangedSource] {
        var changed: [ChangedSource] = []
        var text = manifest
        text.withUTF8 { bytes in
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != 10 { end += 1 }
                if let c = checkLine(ManifestLine(bytes, start, end), parameters: parameters) { changed.append(c) }
                start = end + 1
            }
        }
        return changed
    }

    static func checkLine(_ line: ManifestLine, parameters: [String: String]?) -> ChangedSource? {
        guard let kind = line.byte(0, 0) else { return nil }
        switch kind {
        case UInt8(ascii: "f") where line.count >= 7:
            // f path mode size sha256 source dev:ino:mtime
            let source = line.string(5)
            guard let c = compare(source, line: line, size: 3, digest: 4, origin: 6) else { return nil }
            return ChangedSource(source: source, imagePath: line.string(1), change: c)
        case UInt8(ascii: "i") where line.count >= 5:
            // i path size sha256 dev:ino:mtime
            let source = line.string(1)
            guard let c = compare(source, line: line, size: 2, digest: 3, origin: 4) else { return nil }
            return ChangedSource(source: source, imagePath: nil, change: c)
        case UInt8(ascii: "p") where line.count >= 3:
            guard let parameters, parameters[line.string(1)] ?? "" != line.string(2) else { return nil }
            return ChangedSource(source: line.string(1), imagePath: nil, change: .parameter)
        default:
            return nil
        }
    }

    static func compare(_ path: String, line: ManifestLine, size: Int, digest: Int, origin: Int) -> ChangedSource.Change? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return line.string(digest) == "-" ? nil : .missing }
        if line.number(size) == Int64(st.st_size), line.origin(origin) == Origin(st) { return nil }
        let now = SourceFingerprint(st)
        guard let d = try? now.digest(of: path) else { return .missing }
        return d == line.string(digest) ? nil : .modified
    }

    /// "dev:ino:sec.nsec" as numbers.
    struct Origin: Equatable {
        var device: UInt64
        var inode: UInt64
        var seconds: Int64
        var nanoseconds: Int64

        init(device: UInt64, inode: UInt64, seconds: Int64, nanoseconds: Int64) {
            self.device = device
            self.inode = inode
            self.seconds = seconds
            self.nanoseconds = nanoseconds
        }

        init(_ st: stat) {
            self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), seconds: Int64(st.st_mtim.tv_sec),
                      nanoseconds: Int64(st.st_mtim.tv_nsec))
        }
    }

    /// One manifest line: tab-separated fields as byte ranges of the manifest.
    struct ManifestLine {
        let bytes: UnsafeBufferPointer<UInt8>
        private(set) var fields: [Range<Int>] = []

        init(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) {
            self.bytes = bytes
            var from = start
            for i in start..<end where bytes[i] == 9 {
                fields.append(from..<i)
                from = i + 1
            }
            fields.append(from..<end)
        }

        var count: Int { fields.count }

        func byte(_ field: Int, _ offset: Int) -> UInt8? {
            guard field < fields.count, fields[field].count > offset else { return nil }
            return bytes[fields[field].lowerBound + offset]
        }

        func string(_ field: Int) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[fields[field]]), as: UTF8.self)
        }

        /// A decimal number; nil for "-" or anything else.
        func number(_ field: Int) -> Int64? { Self.decimal(bytes, fields[field]) }

        func origin(_ field: Int) -> Origin? {
            let r = fields[field]
            var parts: [Range<Int>] = []
            var from = r.lowerBound
            for i in r where bytes[i] == UInt8(ascii: ":") || bytes[i] == UInt8(ascii: ".") {
                parts.append(from..<i)
                from = i + 1
            }
            parts.append(from..<r.upperBound)
            guard parts.count == 4, let dev = Self.decimal(bytes, parts[0]), let ino = Self.decimal(bytes, parts[1]),
                  let sec = Self.decimal(bytes, parts[2]), let nsec = Self.decimal(bytes, parts[3]) else { return nil }
            return Origin(device: UInt64(bitPattern: dev), inode: UInt64(bitPattern: ino), seconds: sec, nanoseconds: nsec)
        }

        static func decimal(_ bytes: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Int64? {
            guard !r.isEmpty, r.count <= 19 else { return nil }
            var v: Int64 = 0
            for i in r {
                let d = bytes[i] &- UInt8(ascii: "0")
                guard d < 10 else { return nil }
                v = v * 10 + Int64(d)
            }
            return v
        }
    }
}

extension ImageStore {
    /// Sources of the built image `name` that changed since it was built; empty when it
    /// is up to date. `parameters` (users, groups of its jails) are compared when given.
    /// Throws if the image was never built.
    public func staleness(of name: String, parameters: [String: String]? = nil) throws -> [ChangedSource] {
        guard let rec = try state.image(name) else {
            throw JailError(.notFound, "image \(name) is not built yet (jailctl build \(name))")
        }
        return try staleness(imageHash: rec.hash, parameters: parameters)
    }

    public func staleness(imageHash: String, parameters: [String: String]? = nil) throws -> [ChangedSource] {
        let manifest = root.store + "/" + imageHash + ".manifest"
        guard FS.exists(manifest) else { throw JailError(.notFound, "no manifest for image \(imageHash.prefix(12))") }
        return Staleness.check(manifest: try FS.readText(manifest), parameters: parameters)
    }

    /// For `status`: whether any source of this image version changed on the host. An
    /// unreadable manifest counts as stale, so the jail gets rebuilt rather than trusted.
    public func isStale(imageHash: String) -> Bool {
        guard let changes = try? staleness(imageHash: imageHash) else { return true }
        return !changes.isEmpty
    }
}
