#if canImport(Glibc)
import Glibc
#endif

/// PHP ini text, parsed for what decides which files PHP opens at start-up.
public enum PHPIni {
    public struct Extension: Sendable, Equatable {
        public var zend: Bool
        public var name: String
    }

    /// `key = value` with `;` comments and optional quotes; nil if the key is not set.
    /// The last setting wins, as in PHP.
    public static func setting(_ key: String, in text: String) -> String? {
        var found: String?
        for (k, v) in assignments(text) where k == key { found = v }
        return found
    }

    public static func extensions(in text: String) -> [Extension] {
        assignments(text).compactMap { k, v in
            switch k {
            case "extension": return Extension(zend: false, name: v)
            case "zend_extension": return Extension(zend: true, name: v)
            default: return nil
            }
        }
    }

    static func assignments(_ text: String) -> [(String, String)] {
        var out: [(String, String)] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmedBlanks
            guard !line.isEmpty, !line.hasPrefix(";"), !line.hasPrefix("["), let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmedBlanks
            var value = line[line.index(after: eq)...].split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)
                .first.map { $0.trimmedBlanks } ?? ""
            if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                value = String(value.dropFirst().dropLast())
            }
            out.append((key, value))
        }
        return out
    }

    /// The file PHP loads for an `extension=` value: a path as given, else a name in
    /// extension_dir with `.so` added when missing.
    public static func file(of ext: Extension, extensionDir: String) -> String {
        if ext.name.hasPrefix("/") { return ext.name }
        return extensionDir + "/" + (ext.name.hasSuffix(".so") ? ext.name : ext.name + ".so")
    }

    /// (version, SAPI directory) of a Debian PHP program name: php8.2 -> cli,
    /// php-fpm8.2 -> fpm, php-cgi8.2 -> cgi; nil for anything else.
    public static func program(_ basename: String) -> (version: String, sapi: String)? {
        guard basename.hasPrefix("php") else { return nil }
        var rest = Substring(basename.dropFirst(3))
        var sapi = "cli"
        for (prefix, s) in [("-fpm", "fpm"), ("-cgi", "cgi")] where rest.hasPrefix(prefix) {
            sapi = s
            rest = rest.dropFirst(prefix.count)
        }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else { return nil }
        return (String(rest), sapi)
    }
}

/// For every php* program of the image: its ini files (php.ini, conf.d and the
/// mods-available files they link to, and the rest of the SAPI's config, e.g. fpm's
/// pools), the extensions those ini files enable from extension_dir, each with its
/// closure. PHP loads extensions with dlopen, so no ELF analysis of php finds them.
public struct PHPRule: ImageRule {
    public let name = "php"
    let etc: String

    public init(etc: String = "/etc/php") { self.etc = etc }

    public func apply(to plan: inout ImagePlan, context: RuleContext) throws {
        let programs = context.files(in: plan).compactMap { f -> (String, String, String)? in
            guard f.path.contains("bin/"), let p = PHPIni.program(RuleContext.basename(f.path)) else { return nil }
            return (f.source, p.version, p.sapi)
        }
        for (binary, version, sapi) in programs {
            let dir = "\(etc)/\(version)/\(sapi)"
            guard FS.isDirectory(dir) else {
                plan.note("php: \(binary): no \(dir), so no extensions")
                continue
            }
            try context.addPath(dir, "configuration of \(RuleContext.basename(binary))", to: &plan)
            var iniFiles = [dir + "/php.ini"].filter(FS.exists)
            let confd = dir + "/conf.d"
            if FS.isDirectory(confd) {
                // PHP scans conf.d at start-up: a new ini file there changes the image.
                plan.noteInput(confd)
                iniFiles += try FS.list(confd).filter { $0.hasSuffix(".ini") }.sorted().map { confd + "/" + $0 }
            }
            var extensionDir: String?
            var enabled: [PHPIni.Extension] = []
            for ini in iniFiles {
                let text = try FS.readText(ini)
                if let d = PHPIni.setting("extension_dir", in: text) { extensionDir = d }
                enabled += PHPIni.extensions(in: text)
            }
            guard let extDir = extensionDir ?? Self.compiledExtensionDir(binary) else {
                throw JailError(.image, "php: cannot tell the extension_dir of \(binary)")
            }
            let paths = enabled.map { PHPIni.file(of: $0, extensionDir: extDir) }
            for p in paths where !FS.exists(p) {
                throw JailError(.image, "php: \(p) is enabled in \(dir) but does not exist")
            }
            try context.addELF(paths, "extension enabled for \(RuleContext.basename(binary))", to: &plan)
        }
        // Debian's PHP uses the system's time zone database instead of its own copy, and
        // checks even its "UTC" fallback there; "right/" and "posix/" are duplicates.
        if !programs.isEmpty, FS.isDirectory(zoneinfo) {
            for name in try FS.list(zoneinfo).sorted() where name != "right" && name != "posix" {
                try context.addPath(zoneinfo + "/" + name, "time zone database (date.timezone)", to: &plan)
            }
        }
    }

    let zoneinfo = "/usr/share/zoneinfo"

    /// PHP's compiled-in extension_dir (Debian: /usr/lib/php/<API date>), found as the
    /// string in the binary; else the one such directory that exists.
    static func compiledExtensionDir(_ binary: String) -> String? {
        let needle = Array("/usr/lib/php/20".utf8)
        let found: String? = try? MappedFile.withMapping(binary) { bytes -> String? in
            let buf = bytes.buffer
            guard let base = buf.baseAddress, buf.count > needle.count else { return nil }
            var i = 0
            while i + needle.count <= buf.count {
                guard let p = memchr(base + i, Int32(needle[0]), buf.count - needle.count + 1 - i) else { return nil }
                let start = base.distance(to: UnsafeRawPointer(p))
                i = start + 1
                guard needle.withUnsafeBytes({ n in n.baseAddress.map { memcmp(p, $0, needle.count) } ?? 1 }) == 0 else { continue }
                var end = start
                while end < buf.count, buf[end] != 0, end - start < 64 { end += 1 }
                return String(decoding: UnsafeRawBufferPointer(rebasing: buf[start..<end]), as: UTF8.self)
            }
            return nil
        }
        if let found, FS.isDirectory(found) { return found }
        let dated = ((try? FS.list("/usr/lib/php")) ?? []).filter { $0.count == 8 && $0.allSatisfy(\.isNumber) }
        return dated.count == 1 ? "/usr/lib/php/" + dated[0] : nil
    }
}
