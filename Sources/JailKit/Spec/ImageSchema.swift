/// The keys of `Images/NAME.toml`.
enum ImageSchema {
    struct Draft: Sendable {
        var binaries: [String] = []
        var files: [String] = []
        var directories: [String] = []
        var description: String?
    }

    static let fields: [SpecField<Draft>] = [
        SpecField("binaries", required: true, valid: "a non-empty array of absolute paths of ELF programs on the host") {
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
}
