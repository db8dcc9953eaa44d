#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every symlink met while opening a path (directory links like /lib -> usr/lib included)
/// and the file it ends at, so that a copy of just these entries opens the same way.
/// Memoizes lstat/readlink, so a batch sharing /lib or /usr/lib64 pays for them once.
public struct SymlinkChain {
    public enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        case notAbsolute(String)
        case notFound(String, component: String)
        case tooManyLinks(String)

        public var description: String {
            switch self {
            case .notAbsolute(let p): return "\(p): not an absolute path"
            case .notFound(let p, let c): return "\(p): \(c) does not exist"
            case .tooManyLinks(let p): return "\(p): more than \(SymlinkChain.maxLinks) symlinks (loop?)"
            }
        }
    }

    /// The kernel's MAXSYMLINKS: beyond it open() fails with ELOOP.
    public static let maxLinks = 40

    private enum Node {
        case directory
        case file
        case link(String)
        case absent
    }

    /// The tree's root on this machine; paths given and returned are inside the tree.
    public let root: String
    private var nodes: [String: Node] = [:]

    public init(root: String = "/") {
        self.root = root == "/" ? "" : String(root.reversed().drop(while: { $0 == "/" }).reversed())
    }

    /// One-shot convenience; use an instance for batches.
    public static func entries(for path: String, root: String = "/") throws(Error) -> [FSEntry] {
        var chain = SymlinkChain(root: root)
        return try chain.entries(for: path)
    }

    /// Symlinks in the order they are met, then `.file` for a non-directory end point.
    /// A path ending at a directory yields only its symlinks.
    public mutating func entries(for path: String) throws(Error) -> [FSEntry] {
        guard path.hasPrefix("/") else { throw .notAbsolute(path) }
        var result: [FSEntry] = []
        var pending = Array(path.split(separator: "/").reversed().map(String.init))
        var current = ""  // symlink-free prefix; "" is the root
        var links = 0
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                current = String(current[..<(current.lastIndex(of: "/") ?? current.startIndex)])
                continue
            }
            let candidate = current + "/" + component
            switch node(candidate) {
            case .absent:
                throw .notFound(path, component: candidate)
            case .directory:
                current = candidate
            case .file:
                // A file in the middle of a path would fail with ENOTDIR.
                guard pending.isEmpty else { throw .notFound(path, component: candidate) }
                current = candidate
                result.append(.file(candidate))
            case .link(let target):
                links += 1
                guard links <= Self.maxLinks else { throw .tooManyLinks(path) }
                result.append(.symlink(candidate, target: target))
                if target.hasPrefix("/") { current = "" }
                pending += target.split(separator: "/").reversed().map(String.init)
            }
        }
        return result
    }

    private mutating func node(_ path: String) -> Node {
        if let known = nodes[path] { return known }
        var st = stat()
        let host = root + path
        let found: Node
        if lstat(host, &st) != 0 {
            found = .absent
        } else if (st.st_mode & S_IFMT) == S_IFLNK {
            found = Self.readLink(host).map(Node.link) ?? .absent
        } else if (st.st_mode & S_IFMT) == S_IFDIR {
            found = .directory
        } else {
            found = .file
        }
        nodes[path] = found
        return found
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count)
        guard n > 0, n < buffer.count else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
