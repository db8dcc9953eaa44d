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
/// change (a touch, a reinstall of the same version).
public enum Staleness {
    public static func check(manifest: String, parameters: [String: String]? = nil) -> [ChangedSource] {
        var changed: [ChangedSource] = []
        for line in manifest.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            switch f.first.map(String.init) ?? "" {
            case "f" where f.count >= 7:
                // f path mode size sha256 source dev:ino:mtime
                let source = String(f[5])
                if let c = compare(source, size: f[3], digest: f[4], origin: f[6]) {
                    changed.append(ChangedSource(source: source, imagePath: String(f[1]), change: c))
                }
            case "i" where f.count >= 5:
                // i path size sha256 dev:ino:mtime
                let source = String(f[1])
                if let c = compare(source, size: f[2], digest: f[3], origin: f[4]) {
                    changed.append(ChangedSource(source: source, imagePath: nil, change: c))
                }
            case "p" where f.count >= 3:
                if let parameters, parameters[String(f[1])] ?? "" != String(f[2]) {
                    changed.append(ChangedSource(source: String(f[1]), imagePath: nil, change: .parameter))
                }
            default:
                continue
            }
        }
        return changed
    }

    static func compare(_ path: String, size: Substring, digest: Substring, origin: Substring) -> ChangedSource.Change? {
        guard let now = SourceFingerprint(path: path) else { return digest == "-" ? nil : .missing }
        if now.origin == origin && String(now.size) == size { return nil }
        guard let d = try? now.digest(of: path) else { return .missing }
        return d == digest ? nil : .modified
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
