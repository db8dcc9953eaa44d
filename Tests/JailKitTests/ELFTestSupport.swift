#if canImport(Glibc)
import Glibc
#endif

/// Small POSIX helpers for the ELF tests, kept free of Foundation like the code under test.
enum ELFTestSupport {
    /// Runs a shell command, returns stdout and the exit status.
    static func run(_ command: String) -> (output: String, status: Int32) {
        guard let pipe = popen(command, "r") else { return ("", -1) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, pipe)
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        let status = pclose(pipe)
        return (String(decoding: data, as: UTF8.self), status)
    }

    static func quote(_ s: String) -> String {
        "'" + s.replacingAll("'", with: "'\\''") + "'"
    }

    static func makeTempDirectory() -> String? {
        var template = Array("/tmp/jailkit-elf-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { return nil }
        return String(cString: p)
    }

    static func removeTree(_ path: String) {
        _ = run("rm -rf \(quote(path))")
    }

    static func write(_ bytes: [UInt8], to path: String) -> Bool {
        guard let f = fopen(path, "wb") else { return false }
        defer { fclose(f) }
        return fwrite(bytes, 1, bytes.count, f) == bytes.count
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        return data
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    /// Regular files behind `paths` that start with the ELF magic, by real path, deduplicated.
    static func elfFiles(_ paths: [String]) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for p in paths {
            guard let real = realPath(p), !seen.contains(real) else { continue }
            var st = stat()
            guard stat(real, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            guard let f = fopen(real, "rb") else { continue }
            var magic = [UInt8](repeating: 0, count: 4)
            let n = fread(&magic, 1, 4, f)
            fclose(f)
            guard n == 4, magic == [0x7F, 0x45, 0x4C, 0x46] else { continue }
            seen.insert(real)
            result.append(real)
        }
        return result
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
