/// /etc/pam.d/<service> files, parsed: module lines, `@include FILE`, and the
/// `include` / `substack` controls that pull in another service's stack.
public enum PAMConfig {
    public struct Module: Sendable, Equatable, Hashable {
        public var name: String
        /// A type written with a leading `-`: libpam skips the line if the module is absent.
        public var optional: Bool
    }

    public enum Line: Sendable, Equatable {
        case module(Module)
        case include(String)
    }

    public static func parse(_ text: String) -> [Line] {
        var out: [Line] = []
        for raw in text.split(separator: "\n") {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = tokens(line)
            guard let first = words.first else { continue }
            if first == "@include" {
                if words.count > 1 { out.append(.include(words[1])) }
                continue
            }
            guard words.count >= 3 else { continue }
            let control = words[1]
            if control == "include" || control == "substack" {
                out.append(.include(words[2]))
            } else {
                out.append(.module(Module(name: words[2], optional: first.hasPrefix("-"))))
            }
        }
        return out
    }

    /// Words of a line; a bracketed control (`[success=ok default=bad]`) is one word.
    static func tokens(_ line: Substring) -> [String] {
        var words: [String] = []
        var current = ""
        var depth = 0
        for c in line {
            if c == "[" { depth += 1 }
            if c == "]" { depth = max(0, depth - 1) }
            if (c == " " || c == "\t") && depth == 0 {
                if !current.isEmpty { words.append(current) }
                current = ""
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Every config file a service's stack reads (itself and its includes, each once,
    /// loops cut) and every module it names. `read` returns a file's text or nil.
    public static func resolve(service: String, directory: String = "/etc/pam.d", read: (String) -> String?)
        -> (files: [String], modules: [Module])
    {
        var files: [String] = []
        var modules: [Module] = []
        var pending = [service]
        while let name = pending.popLast() {
            let path = name.hasPrefix("/") ? name : directory + "/" + name
            guard !files.contains(path), let text = read(path) else { continue }
            files.append(path)
            var includes: [String] = []
            for line in parse(text) {
                switch line {
                case .module(let m): if !modules.contains(m) { modules.append(m) }
                case .include(let other): includes.append(other)
                }
            }
            // Depth-first in file order, so the files list reads like the stack.
            pending += includes.reversed()
        }
        return (files, modules)
    }
}

/// Programs linked with libpam load the modules their service's /etc/pam.d file names
/// (dlopen), reading more config on the way. For each program of the image that has a
/// service file of its name (sshd, su, login, cron, ...), adds the stack's files, its
/// modules with their closures, the config those modules read, /etc/pam.d/other, and a
/// /etc/shadow with locked entries for the image's users (pam_unix account checks read it).
public struct PAMRule: ImageRule {
    public let name = "pam"
    let directory: String

    public init(directory: String = "/etc/pam.d") { self.directory = directory }

    /// Files PAM modules commonly read; only those present on the host are added.
    static let moduleConfig = ["/etc/security", "/etc/environment", "/etc/default/locale", "/etc/login.defs"]

    public func apply(to plan: inout ImagePlan, context: RuleContext) throws {
        let files = context.files(in: plan)
        guard files.contains(where: { RuleContext.basename($0.path).hasPrefix("libpam.so") }),
              let libdir = context.libcDirectory(in: plan)
        else { return }
        let programs = files.filter { $0.path.contains("bin/") }.map { RuleContext.basename($0.path) }
        let services = programs.filter { FS.exists(directory + "/" + $0) }.sorted() + ["other"]
        var modules: [PAMConfig.Module] = []
        for service in services {
            let stack = PAMConfig.resolve(service: service, directory: directory) { try? FS.readText($0) }
            for f in stack.files { try context.addPath(f, "stack of \(service)", to: &plan) }
            for m in stack.modules where !modules.contains(m) { modules.append(m) }
        }
        var paths: [String] = []
        for m in modules {
            let path = m.name.hasPrefix("/") ? m.name : libdir + "/security/" + m.name
            if FS.exists(path) {
                paths.append(path)
            } else {
                // libpam fails such a line on the host too (or skips it, with `-`).
                plan.note("pam: \(m.name) is named in /etc/pam.d but not installed")
            }
        }
        try context.addELF(paths, "module named in /etc/pam.d", to: &plan)
        for c in Self.moduleConfig { try context.addIfPresent(c, "read by PAM modules", to: &plan) }
        if !plan.contains("/etc/shadow"), case .generated(let passwd)? = plan.entry("/etc/passwd")?.kind {
            plan.add("/etc/shadow", .generated(Self.lockedShadow(passwd: passwd)), reason: context.reason("locked entries for pam_unix"))
        }
    }

    /// One locked entry (`!`: no password can match) per user of the image's passwd.
    static func lockedShadow(passwd: String) -> String {
        passwd.split(separator: "\n").compactMap { line in
            line.split(separator: ":").first.map { "\($0):!:19000:0:99999:7:::" }
        }.joined(separator: "\n") + "\n"
    }
}
