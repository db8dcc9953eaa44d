/// State of validating one file: where it is, where its keys are, and what is wrong so far.
/// Decoders report and carry on, so one run lists every problem of the file.
struct SpecContext: Sendable {
    let file: String
    let map: TOMLSourceMap
    /// False in unit tests: skip every check that looks at the host filesystem.
    let hostChecks: Bool
    private(set) var diagnostics: [SpecDiagnostic] = []

    init(file: String, map: TOMLSourceMap, hostChecks: Bool) {
        self.file = file
        self.map = map
        self.hostChecks = hostChecks
    }

    var hasErrors: Bool { diagnostics.contains { $0.isError } }

    // MARK: reporting

    /// `atValue`: point at the value (wrong type, bad content) rather than at the key
    /// (unknown key, bad env name). Array elements are their own values.
    mutating func report(
        _ path: TOMLKeyPath, atValue: Bool = true, _ message: String, valid: String,
        severity: SpecDiagnostic.Severity = .error
    ) {
        let position = map.position(of: path, preferValue: atValue)
        diagnostics.append(
            SpecDiagnostic(
                file: file, line: position.line, column: position.column, field: path.description,
                message: message, valid: valid, severity: severity))
    }

    /// A diagnostic that belongs to no key: syntax errors, file names, unreadable files.
    mutating func report(at position: SourcePosition, field: String, _ message: String, valid: String) {
        diagnostics.append(
            SpecDiagnostic(
                file: file, line: position.line, column: position.column, field: field,
                message: message, valid: valid))
    }

    mutating func append(_ more: [SpecDiagnostic]) {
        diagnostics.append(contentsOf: more)
    }

    // MARK: schema-driven decoding

    /// Decodes every key of `table` with the matching field; reports unknown keys (with a
    /// suggestion when one is close) and missing required keys.
    mutating func decode<Draft>(
        _ table: [String: TOMLNode], at base: TOMLKeyPath, fields: [SpecField<Draft>],
        into draft: inout Draft, what: String
    ) {
        for key in table.keys.sorted() {
            guard let value = table[key] else { continue }
            let path = base.appending(key)
            if let field = fields.first(where: { $0.key == key }) {
                field.decode(value, path, &draft, &self)
            } else {
                let known = fields.map(\.key)
                let valid =
                    SpecRules.suggestion(for: key, among: known).map { "did you mean \"\($0)\"?" }
                    ?? "valid keys in \(what): \(known.sorted().joined(separator: ", "))"
                report(path, atValue: false, "unknown key in \(what)", valid: valid)
            }
        }
        for field in fields where field.required && table[field.key] == nil {
            // The key is absent, so this lands on the enclosing table (or line 1 column 1).
            report(base.appending(field.key), atValue: false, "missing required key", valid: "expected \(field.valid)")
        }
    }

    // MARK: typed values

    mutating func wrongType(_ value: TOMLNode, at path: TOMLKeyPath, expected: String, valid: String) {
        report(path, "expected \(expected), found \(value.typeName)", valid: valid)
    }

    mutating func string(_ value: TOMLNode, at path: TOMLKeyPath, valid: String) -> String? {
        guard case .string(let text) = value else {
            wrongType(value, at: path, expected: "a string", valid: valid)
            return nil
        }
        return text
    }

    mutating func bool(_ value: TOMLNode, at path: TOMLKeyPath, valid: String) -> Bool? {
        guard case .boolean(let flag) = value else {
            wrongType(value, at: path, expected: "a boolean", valid: valid)
            return nil
        }
        return flag
    }

    mutating func table(_ value: TOMLNode, at path: TOMLKeyPath, valid: String) -> [String: TOMLNode]? {
        guard case .table(let table) = value else {
            wrongType(value, at: path, expected: "a table", valid: valid)
            return nil
        }
        return table
    }

    /// An array of strings; wrong elements are reported at the element and left out.
    mutating func strings(_ value: TOMLNode, at path: TOMLKeyPath, valid: String) -> [(text: String, path: TOMLKeyPath)]? {
        guard case .array(let elements) = value else {
            wrongType(value, at: path, expected: "an array of strings", valid: valid)
            return nil
        }
        var result: [(text: String, path: TOMLKeyPath)] = []
        for (index, element) in elements.enumerated() {
            let elementPath = path.appending(index: index)
            if let text = string(element, at: elementPath, valid: valid) {
                result.append((text, elementPath))
            }
        }
        return result
    }

    /// An absolute path, normalised; relative paths and `..` above `/` are reported.
    mutating func absolutePath(_ text: String, at path: TOMLKeyPath, valid: String) -> String? {
        switch SpecRules.normalise(text) {
        case .path(let normalised):
            return normalised
        case .relative:
            report(path, "\"\(text)\" is a relative path", valid: valid)
        case .escapesRoot:
            report(path, "\"\(text)\" climbs above / with \"..\"", valid: valid)
        }
        return nil
    }

    /// An array of absolute paths without duplicates (compared after normalisation).
    /// Returns the entries as written when `keepAsWritten`, else normalised.
    mutating func pathList(
        _ value: TOMLNode, at path: TOMLKeyPath, valid: String, keepAsWritten: Bool
    ) -> [(text: String, path: TOMLKeyPath)]? {
        guard let entries = strings(value, at: path, valid: valid) else { return nil }
        var seen: [String: TOMLKeyPath] = [:]
        var result: [(text: String, path: TOMLKeyPath)] = []
        for entry in entries {
            guard let normalised = absolutePath(entry.text, at: entry.path, valid: valid) else { continue }
            if let first = seen[normalised] {
                report(entry.path, "duplicate entry \"\(entry.text)\", already listed as \(first)", valid: "list each path once")
                continue
            }
            seen[normalised] = entry.path
            result.append((keepAsWritten ? entry.text : normalised, entry.path))
        }
        return result
    }

    /// `"name"` or a numeric id for `user` / `group`.
    mutating func idRef(_ value: TOMLNode, at path: TOMLKeyPath, valid: String) -> IDRef? {
        switch value {
        case .string(let name):
            guard SpecRules.isValidAccountName(name) else {
                report(path, "\"\(name)\" is not a valid account name", valid: valid)
                return nil
            }
            return .name(name)
        case .integer(let number):
            // 4294967295 is (uid_t)-1, which setuid(2) and chown(2) treat as "no change".
            guard number >= 0, number < Int(UInt32.max) else {
                report(path, "\(number) is out of range", valid: valid)
                return nil
            }
            return .id(UInt32(number))
        default:
            wrongType(value, at: path, expected: "a string or an integer", valid: valid)
            return nil
        }
    }
}
