/// Positions of keys and values in a TOML source text, by key path.
///
/// TOMLKit (toml++ underneath) gives positions only for syntax errors, never for the keys
/// and values of a parsed document, yet every diagnostic must point at the offending text.
/// This scanner recovers those positions. It is deliberately forgiving: it never fails and
/// never decides what is valid TOML (TOMLKit does that); on text it does not understand it
/// skips to the end of the line, so a broken line cannot hide positions on later lines.
///
/// Paths are rendered by `TOMLKeyPath`: `image`, `env.PATH`, `volumes[0].target`,
/// `network.ports[2]`. Arrays of tables (`[[volumes]]`) count up per header; a table header
/// below an array of tables (`[volumes.opts]`) belongs to its latest element, as in TOML.
public struct TOMLSourceMap: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// Start of the key (for an array element or a `[[table]]` element: the element).
        public var key: SourcePosition
        /// Start of the value, when the scanner saw one (not for tables made by headers).
        public var value: SourcePosition?
    }

    public private(set) var entries: [String: Entry]

    public init(source: String) {
        var scanner = Scanner(source: source)
        scanner.run()
        entries = scanner.entries
    }

    public func entry(_ path: String) -> Entry? { entries[path] }

    /// Position of the key at `path`, if the scanner saw it.
    public func keyPosition(_ path: String) -> SourcePosition? { entries[path]?.key }

    /// Position of the value at `path`, falling back to its key when the value has none.
    public func valuePosition(_ path: String) -> SourcePosition? {
        guard let entry = entries[path] else { return nil }
        return entry.value ?? entry.key
    }

    /// The best position for a diagnostic: the path itself, else its nearest ancestor that
    /// appears in the text, else the start of the file (e.g. a missing top-level key).
    public func position(of path: TOMLKeyPath, preferValue: Bool) -> SourcePosition {
        var current = path
        while !current.isRoot {
            let rendered = current.description
            if let found = preferValue ? valuePosition(rendered) : keyPosition(rendered) {
                return found
            }
            current = current.parent
        }
        return .start
    }
}

extension TOMLSourceMap {
    fileprivate struct Scanner {
        let chars: [Unicode.Scalar]
        var index = 0
        var line = 1
        var column = 1
        var entries: [String: Entry] = [:]
        /// Elements seen so far per array-of-tables path, to number `[[x]]` headers.
        var arrayTableCounts: [String: Int] = [:]
        /// The table that the current `[header]` opened; key/value lines go below it.
        var currentTable = TOMLKeyPath.root

        init(source: String) {
            chars = Array(source.unicodeScalars)
        }

        var position: SourcePosition { SourcePosition(line: line, column: column) }

        func peek(_ offset: Int = 0) -> Unicode.Scalar? {
            let at = index + offset
            return at < chars.count ? chars[at] : nil
        }

        func lookingAt(_ text: String) -> Bool {
            var offset = 0
            for scalar in text.unicodeScalars {
                guard peek(offset) == scalar else { return false }
                offset += 1
            }
            return true
        }

        mutating func advance(_ count: Int = 1) {
            for _ in 0..<count {
                guard index < chars.count else { return }
                if chars[index] == "\n" {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
                index += 1
            }
        }

        mutating func record(_ path: TOMLKeyPath, key: SourcePosition, value: SourcePosition? = nil) {
            let rendered = path.description
            // First sighting wins: an implicit parent (the `a` of `a.b = 1`) keeps the
            // place where it first appeared, as TOML itself defines it there.
            if entries[rendered] == nil {
                entries[rendered] = Entry(key: key, value: value)
            }
        }

        // MARK: statements

        mutating func run() {
            while index < chars.count {
                skipTrivia(newlines: true)
                guard let scalar = peek() else { break }
                if scalar == "[" {
                    tableHeader()
                } else if Self.isBareKeyScalar(scalar) || scalar == "\"" || scalar == "'" {
                    keyValue(below: currentTable)
                }
                finishLine()
            }
        }

        /// After a statement only a comment may follow; anything else is skipped so that the
        /// next line starts clean (TOMLKit reports the actual syntax error).
        mutating func finishLine() {
            skipTrivia(newlines: false)
            while let scalar = peek(), scalar != "\n" {
                advance()
            }
        }

        mutating func tableHeader() {
            let start = position
            let isArray = peek(1) == "["
            advance(isArray ? 2 : 1)
            let parts = parseKey()
            skipTrivia(newlines: false)
            if lookingAt(isArray ? "]]" : "]") { advance(isArray ? 2 : 1) }
            guard !parts.isEmpty else { return }

            var path = TOMLKeyPath.root
            for (offset, part) in parts.enumerated() {
                path = path.appending(part.key)
                let rendered = path.description
                let isLast = offset == parts.count - 1
                if isLast && isArray {
                    let count = arrayTableCounts[rendered, default: 0]
                    arrayTableCounts[rendered] = count + 1
                    record(path, key: part.position)
                    path = path.appending(index: count)
                    record(path, key: start)
                } else if let count = arrayTableCounts[rendered] {
                    // A header through an array of tables refers to its latest element.
                    path = path.appending(index: max(count - 1, 0))
                } else {
                    record(path, key: part.position)
                }
            }
            currentTable = path
        }

        mutating func keyValue(below base: TOMLKeyPath) {
            let parts = parseKey()
            guard !parts.isEmpty else { return }
            skipTrivia(newlines: false)
            guard peek() == "=" else { return }
            advance()
            skipTrivia(newlines: false)
            var path = base
            for (offset, part) in parts.enumerated() {
                path = path.appending(part.key)
                // Intermediate parts of a dotted key get their own position; the full path
                // is recorded with its value just below.
                if offset < parts.count - 1 {
                    record(path, key: part.position)
                }
            }
            guard let lastPart = parts.last else { return }
            entries[path.description] = Entry(key: lastPart.position, value: position)
            parseValue(at: path)
        }

        // MARK: keys

        struct KeyPart {
            var key: String
            var position: SourcePosition
        }

        /// A possibly dotted key: `a`, `"quoted key"`, `'literal'`, `a."b.c".d`.
        mutating func parseKey() -> [KeyPart] {
            var parts: [KeyPart] = []
            while true {
                skipTrivia(newlines: false)
                let start = position
                guard let scalar = peek() else { break }
                var key = ""
                if scalar == "\"" {
                    key = readBasicStringContent()
                } else if scalar == "'" {
                    key = readLiteralStringContent()
                } else {
                    while let next = peek(), Self.isBareKeyScalar(next) {
                        key.unicodeScalars.append(next)
                        advance()
                    }
                    if key.isEmpty { break }
                }
                parts.append(KeyPart(key: key, position: start))
                skipTrivia(newlines: false)
                guard peek() == "." else { break }
                advance()
            }
            return parts
        }

        static func isBareKeyScalar(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", "_", "-": return true
            default: return false
            }
        }

        // MARK: values

        mutating func parseValue(at path: TOMLKeyPath) {
            guard let scalar = peek() else { return }
            switch scalar {
            case "\"":
                _ = readBasicStringContent()
            case "'":
                _ = readLiteralStringContent()
            case "[":
                parseArray(at: path)
            case "{":
                parseInlineTable(at: path)
            default:
                // Numbers, booleans, dates (which may contain a space): up to a delimiter.
                while let next = peek(), !",]}#\n".unicodeScalars.contains(next) {
                    advance()
                }
            }
        }

        mutating func parseArray(at path: TOMLKeyPath) {
            advance()  // [
            var element = 0
            while true {
                skipTrivia(newlines: true)
                guard let scalar = peek() else { return }
                if scalar == "]" {
                    advance()
                    return
                }
                if scalar == "," {
                    // Tolerated so that a stray comma cannot stall the scan.
                    advance()
                    continue
                }
                let start = position
                let elementPath = path.appending(index: element)
                record(elementPath, key: start, value: start)
                let before = index
                parseValue(at: elementPath)
                if index == before { advance() }  // always make progress on odd input
                element += 1
                skipTrivia(newlines: true)
                if peek() == "," { advance() }
            }
        }

        mutating func parseInlineTable(at path: TOMLKeyPath) {
            advance()  // {
            while true {
                // Newlines are not TOML 1.0 inside inline tables, but TOML 1.1 allows them
                // and skipping them costs nothing here.
                skipTrivia(newlines: true)
                guard let scalar = peek() else { return }
                if scalar == "}" {
                    advance()
                    return
                }
                if scalar == "," {
                    advance()
                    continue
                }
                let before = index
                keyValue(below: path)
                if index == before { advance() }
            }
        }

        // MARK: strings and trivia

        /// Reads `"..."` or `"""..."""` and returns its content with the common escapes
        /// decoded (the content matters only for quoted keys).
        mutating func readBasicStringContent() -> String {
            var content = ""
            let multiline = lookingAt("\"\"\"")
            advance(multiline ? 3 : 1)
            while let scalar = peek() {
                if scalar == "\\" {
                    if let escaped = peek(1) {
                        switch escaped {
                        case "n": content.append("\n")
                        case "t": content.append("\t")
                        case "r": content.append("\r")
                        case "\"": content.append("\"")
                        case "\\": content.append("\\")
                        default: content.unicodeScalars.append(escaped)
                        }
                    }
                    advance(2)
                    continue
                }
                if multiline {
                    if lookingAt("\"\"\"") {
                        advance(3)
                        // Up to two more quotes belong to the content: `""""` ends with one.
                        var extra = 0
                        while extra < 2 && peek() == "\"" {
                            advance()
                            extra += 1
                        }
                        return content
                    }
                } else if scalar == "\"" {
                    advance()
                    return content
                } else if scalar == "\n" {
                    return content  // unterminated; leave the newline to the caller
                }
                content.unicodeScalars.append(scalar)
                advance()
            }
            return content
        }

        mutating func readLiteralStringContent() -> String {
            var content = ""
            let multiline = lookingAt("'''")
            advance(multiline ? 3 : 1)
            while let scalar = peek() {
                if multiline {
                    if lookingAt("'''") {
                        advance(3)
                        var extra = 0
                        while extra < 2 && peek() == "'" {
                            advance()
                            extra += 1
                        }
                        return content
                    }
                } else if scalar == "'" {
                    advance()
                    return content
                } else if scalar == "\n" {
                    return content
                }
                content.unicodeScalars.append(scalar)
                advance()
            }
            return content
        }

        mutating func skipTrivia(newlines: Bool) {
            while let scalar = peek() {
                switch scalar {
                case " ", "\t", "\r":
                    advance()
                case "\n":
                    guard newlines else { return }
                    advance()
                case "#":
                    while let next = peek(), next != "\n" {
                        advance()
                    }
                default:
                    return
                }
            }
        }
    }
}
