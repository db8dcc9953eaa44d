/// The keys of `Images/NAME.toml`.
enum ImageSchema {
    struct Draft: Sendable {
        var binaries: [String] = []
        var files: [String] = []
        var directories: [String] = []
        var description: String?
        var packages: [String] = []
        var packageExtras: [String] = []
        var dlopen: [String] = []
        var localeSupport = false
        var caCertificates = false
    }

    static func spec(from draft: Draft, name: String, file: String) -> ImageSpec {
        ImageSpec(
            name: name, file: file, binaries: draft.binaries, files: draft.files, directories: draft.directories,
            description: draft.description, packages: draft.packages, packageExtras: draft.packageExtras,
            dlopen: draft.dlopen, localeSupport: draft.localeSupport, caCertificates: draft.caCertificates)
    }

    /// Rules across keys: an image needs programs, from `binaries` or from `packages`.
    static func checkContent(_ draft: Draft, table: [String: TOMLNode], context: inout SpecContext) {
        if table["binaries"] == nil && table["packages"] == nil {
            context.report(TOMLKeyPath.root.appending("binaries"), atValue: false, "missing required key",
                           valid: "expected \(field("binaries")) (or packages = [...])")
        }
    }

    static let fields: [SpecField<Draft>] = [
        SpecField("binaries", valid: "a non-empty array of absolute paths of ELF programs on the host") {
            value, path, draft, context in
            draft.binaries = decodeBinaries(value, at: path, context: &context)
        },
        SpecField("files", valid: "an array of absolute host paths or globs, e.g. [\"/etc/passwd\", \"/usr/share/zoneinfo/*\"]") {
            value, path, draft, context in
            draft.files = decodeFiles(value, at: path, context: &context)
        },
        SpecField("directories", valid: "an array of absolute paths other than /, e.g. [\"/tmp\", \"/var/log\"]") {
            value, path, draft, context in
            draft.directories = decodeDirectories(value, at: path, context: &context)
        },
        SpecField("description", valid: "a string") { value, path, draft, context in
            draft.description = context.string(value, at: path, valid: "a string")
        },
        SpecField("packages", valid: "an array of Debian package names installed on this host, e.g. [\"rsync\", \"openssh-server\"]") {
            value, path, draft, context in
            draft.packages = decodePackages(value, at: path, context: &context)
        },
        SpecField("package_extras", valid: "an array of: \(packageExtraGroups.joined(separator: ", "))") {
            value, path, draft, context in
            let valid = field("package_extras")
            for entry in context.strings(value, at: path, valid: valid) ?? [] {
                if packageExtraGroups.contains(entry.text) {
                    draft.packageExtras.append(entry.text)
                } else {
                    context.report(entry.path, "\"\(entry.text)\" is not a group of package files", valid: valid)
                }
            }
        },
        SpecField("dlopen", valid: "an array of absolute paths or globs of shared libraries, e.g. [\"/usr/lib/x86_64-linux-gnu/sasl2/*.so\"]") {
            value, path, draft, context in
            draft.dlopen = decodeDlopen(value, at: path, context: &context)
        },
        SpecField("locale_support", valid: "true or false (gconv modules and the C.UTF-8 locale)") { value, path, draft, context in
            draft.localeSupport = context.bool(value, at: path, valid: field("locale_support")) ?? false
        },
        SpecField("ca_certificates", valid: "true or false (/etc/ssl/certs)") { value, path, draft, context in
            draft.caCertificates = context.bool(value, at: path, valid: field("ca_certificates")) ?? false
        },
    ]

    static func field(_ key: String) -> String {
        fields.first { $0.key == key }?.valid ?? ""
    }

    static func decodeBinaries(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [String] {
        let valid = field("binaries")
        guard let entries = context.pathList(value, at: path, valid: valid, keepAsWritten: true) else { return [] }
        if case .array(let raw) = value, raw.isEmpty {
            context.report(path, "no binaries listed", valid: valid)
        }
        if context.hostChecks {
            for entry in entries {
                switch HostChecks.programProblem(entry.text) {
                case nil:
                    break
                case .missing:
                    context.report(entry.path, "\"\(entry.text)\" does not exist on this host", valid: valid)
                case .notRegularFile:
                    context.report(entry.path, "\"\(entry.text)\" is not a regular file", valid: valid)
                case .notELF:
                    context.report(
                        entry.path, "\"\(entry.text)\" is not an ELF program",
                        valid: "list scripts under files and their interpreter under binaries")
                }
            }
        }
        return entries.map(\.text)
    }

    static func decodeFiles(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [String] {
        let valid = field("files")
        guard let entries = context.pathList(value, at: path, valid: valid, keepAsWritten: true) else { return [] }
        if context.hostChecks {
            for entry in entries {
                if SpecRules.isGlob(entry.text) {
                    // An empty glob may be legitimate (optional config), so only warn.
                    if HostChecks.globMatches(entry.text) == 0 {
                        context.report(
                            entry.path, "glob \"\(entry.text)\" matches nothing on this host",
                            valid: "check the pattern, or remove it if nothing is expected", severity: .warning)
                    }
                } else if !HostChecks.exists(entry.text) {
                    context.report(entry.path, "\"\(entry.text)\" does not exist on this host", valid: valid)
                }
            }
        }
        return entries.map(\.text)
    }

    static func decodeDirectories(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [String] {
        let valid = field("directories")
        guard let entries = context.pathList(value, at: path, valid: valid, keepAsWritten: false) else { return [] }
        var result: [String] = []
        for entry in entries {
            // The image root always exists; listing it is a mistake, not a request.
            if entry.text == "/" {
                context.report(entry.path, "\"/\" is the image root itself", valid: valid)
            } else {
                result.append(entry.text)
            }
        }
        return result
    }

    /// Debian policy 5.6.1: lowercase letters, digits, `+ - .`, at least two characters,
    /// starting with a letter or digit; optionally `:arch`.
    static func isValidPackageName(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.first, name.count >= 2,
              let first = name.first, first.isASCII, first.isLowercase || first.isNumber else { return false }
        let nameOK = name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || "+-.".contains($0)) }
        let archOK = parts.count == 1 || parts[1].allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") } && !parts[1].isEmpty
        return nameOK && archOK
    }

    /// Directory names under /usr/share that `package_extras` can bring back.
    static let packageExtraGroups = ["doc", "man", "info", "locale", "bash-completion", "zsh", "fish"]

    static func decodePackages(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [String] {
        let valid = field("packages")
        guard let entries = context.strings(value, at: path, valid: valid) else { return [] }
        var seen: Set<String> = []
        var result: [String] = []
        // Read once per file, and only when something is listed.
        var db: DpkgDatabase?
        var dbError: String?
        for entry in entries {
            guard isValidPackageName(entry.text) else {
                context.report(entry.path, "\"\(entry.text)\" is not a Debian package name", valid: valid)
                continue
            }
            guard seen.insert(entry.text).inserted else {
                context.report(entry.path, "duplicate package \"\(entry.text)\"", valid: "list each package once")
                continue
            }
            result.append(entry.text)
            guard context.hostChecks else { continue }
            if db == nil && dbError == nil {
                do { db = try DpkgDatabase() } catch { dbError = "\(error)" }
            }
            if let dbError {
                context.report(entry.path, "cannot read the dpkg database: \(dbError)", valid: "a Debian host")
                continue
            }
            switch db?.lookup(entry.text) {
            case .installed?, nil:
                break
            case .notInstalled(let p)?:
                context.report(entry.path, "package \"\(entry.text)\" is not installed on this host (\(p.status))",
                               valid: "apt install \(entry.text), or remove it from packages")
            case .unknown?:
                context.report(entry.path, "no package named \"\(entry.text)\" on this host", valid: valid)
            }
        }
        return result
    }

    static func decodeDlopen(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [String] {
        let valid = field("dlopen")
        guard let entries = context.pathList(value, at: path, valid: valid, keepAsWritten: true) else { return [] }
        if context.hostChecks {
            for entry in entries {
                if SpecRules.isGlob(entry.text) {
                    if HostChecks.globMatches(entry.text) == 0 {
                        context.report(entry.path, "glob \"\(entry.text)\" matches nothing on this host", valid: valid)
                    }
                } else {
                    switch HostChecks.programProblem(entry.text) {
                    case nil: break
                    case .missing: context.report(entry.path, "\"\(entry.text)\" does not exist on this host", valid: valid)
                    case .notRegularFile, .notELF:
                        context.report(entry.path, "\"\(entry.text)\" is not an ELF shared library", valid: valid)
                    }
                }
            }
        }
        return entries.map(\.text)
    }
}
