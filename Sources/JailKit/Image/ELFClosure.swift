#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The set of files the dynamic loader would open for a batch of executables and
/// libraries, found the way glibc 2.36's ld.so finds them (what `ldd` lists), without
/// running anything.
public struct ELFClosure: Sendable {
    public enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        case input(ELFFile.Error)
        case path(SymlinkChain.Error)

        public var description: String {
            switch self {
            case .input(let e): return e.description
            case .path(let e): return e.description
            }
        }
    }

    public let config: LinkerConfig

    public init(config: LinkerConfig) {
        self.config = config
    }

    /// Objects are parsed once per call, so pass a whole image's worth of paths at once.
    /// An input that is not a supported ELF object throws; a dependency that cannot be
    /// found goes to `missing`, as ldd reports it, and does not throw.
    public func closure(of paths: [String]) throws(Error) -> ClosureResult {
        var loader = LoaderSimulation(config: config)
        var result = ClosureResult()
        var wanted: [(path: String, reason: String)] = []
        var missing = Set<ClosureResult.Missing>()

        for input in paths {
            let path = absolute(input)
            wanted.append((path, "requested"))
            let elf: ELFFile
            switch loader.object(at: path) {
            case .success(let e): elf = e
            case .failure(let e): throw .input(e)
            case nil: throw .input(.unreadable(path: path, errno: ENOENT))
            }
            let outcome = loader.load(main: path, elf)
            result.resolved[path] = outcome.resolved
            if !outcome.missing.isEmpty { result.missingByInput[path] = outcome.missing }
            for lib in outcome.loaded { wanted.append((lib.path, lib.reason)) }
            for m in outcome.missing where missing.insert(m).inserted { result.missing.append(m) }
        }

        var chain = SymlinkChain(root: config.root)
        var seen = Set<FSEntry>()
        for (path, reason) in wanted {
            // Shared libraries come back once per input; their chains are already in.
            guard result.reasons[path] == nil else { continue }
            result.reasons[path] = reason
            let entries: [FSEntry]
            do {
                entries = try chain.entries(for: path)
            } catch {
                throw .path(error)
            }
            for entry in entries where seen.insert(entry).inserted {
                result.entries.append(entry)
                if result.reasons[entry.path] == nil { result.reasons[entry.path] = "on the way to \(path)" }
            }
        }
        return result
    }

    /// The loader computes $ORIGIN of a relative name against the working directory.
    private func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (cwd == "/" ? "" : cwd) + "/" + path
    }
}
