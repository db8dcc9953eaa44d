/// The `[[users]]` tables of a jail file: users that only this jail has.
enum JailUserSchema {
    struct Draft: Sendable {
        var name: String?
        var uid: UInt32?
        var gid: UInt32?
        var home: String?
        var shell: String?
    }

    static let valid = "an array of tables [[users]] with name, home and optional uid, gid, shell"

    static let fields: [SpecField<JailSchema.Draft>] = [
        SpecField("users", valid: valid) { value, path, draft, context in
            let decoded = decodeUsers(value, at: path, context: &context)
            draft.users = decoded.map(\.user)
            draft.userIndices = decoded.map(\.index)
        },
    ]

    static let userFields: [SpecField<Draft>] = [
        SpecField("name", required: true, valid: "a user name: a-z or _ first, then a-z, 0-9, _, -, . (at most 32); not root or nobody") {
            value, path, draft, context in
            let valid = userValid("name")
            guard let name = context.string(value, at: path, valid: valid) else { return }
            guard SpecRules.isValidAccountName(name) else {
                context.report(path, "\"\(name)\" is not a valid user name", valid: valid)
                return
            }
            guard !reservedNames.contains(name) else {
                context.report(path, "\"\(name)\" is a user every image has", valid: valid)
                return
            }
            draft.name = name
        },
        SpecField("uid", valid: "an id \(JailUserSpec.validIds.lowerBound)-\(JailUserSpec.validIds.upperBound); default: the first free one above 1000") {
            value, path, draft, context in
            draft.uid = id(value, at: path, valid: userValid("uid"), context: &context)
        },
        SpecField("gid", valid: "a group id \(JailUserSpec.validIds.lowerBound)-\(JailUserSpec.validIds.upperBound); default: a group of the user's name") {
            value, path, draft, context in
            draft.gid = id(value, at: path, valid: userValid("gid"), context: &context)
        },
        SpecField("home", required: true, valid: "an absolute path inside one of the jail's writable volumes (readonly = false)") {
            value, path, draft, context in
            let valid = userValid("home")
            guard let text = context.string(value, at: path, valid: valid) else { return }
            // A passwd line holds it: a ":" or a line break would forge fields or users.
            if text.contains(where: { $0 == ":" || $0.isNewline || ($0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false) }) {
                context.report(path, "a home may not contain \":\" or control characters", valid: valid)
                return
            }
            draft.home = context.absolutePath(text, at: path, valid: valid)
        },
        SpecField("shell", valid: "an absolute path of a program in the image, e.g. \"/bin/sh\"; default: no shell (\(JailUserSpec.noShell))") {
            value, path, draft, context in
            let valid = userValid("shell")
            guard let text = context.string(value, at: path, valid: valid) else { return }
            // A passwd line holds it: a ":" or a line break would forge fields or users.
            if text.contains(where: { $0 == ":" || $0.isNewline || ($0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false) }) {
                context.report(path, "a shell may not contain \":\" or control characters", valid: valid)
                return
            }
            draft.shell = context.absolutePath(text, at: path, valid: valid)
        },
    ]

    /// In every image's passwd (IdentityFiles.base), so never a jail's own.
    static let reservedNames: Set<String> = ["root", "nobody", "nogroup"]

    static func userValid(_ key: String) -> String {
        userFields.first { $0.key == key }?.valid ?? ""
    }

    static func id(_ value: TOMLNode, at path: TOMLKeyPath, valid: String, context: inout SpecContext) -> UInt32? {
        guard case .integer(let number) = value else {
            context.wrongType(value, at: path, expected: "an integer", valid: valid)
            return nil
        }
        guard number >= Int(JailUserSpec.validIds.lowerBound), number <= Int(JailUserSpec.validIds.upperBound) else {
            context.report(path, "\(number) is out of range", valid: valid)
            return nil
        }
        return UInt32(number)
    }

    static func decodeUsers(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [(user: JailUserSpec, index: Int)] {
        guard case .array(let elements) = value else {
            context.wrongType(value, at: path, expected: "an array of tables", valid: valid)
            return []
        }
        var users: [(user: JailUserSpec, index: Int)] = []
        var names: [String: TOMLKeyPath] = [:]
        var uids: [UInt32: TOMLKeyPath] = [:]
        for (index, element) in elements.enumerated() {
            let elementPath = path.appending(index: index)
            guard let table = context.table(element, at: elementPath, valid: valid) else { continue }
            var draft = Draft()
            context.decode(table, at: elementPath, fields: userFields, into: &draft, what: "a user")
            guard let name = draft.name, let home = draft.home else { continue }
            if let first = names[name] {
                context.report(elementPath.appending("name"), "user \"\(name)\" is already defined by \(first)",
                               valid: "each user once")
                continue
            }
            names[name] = elementPath
            if let uid = draft.uid {
                if let first = uids[uid] {
                    context.report(elementPath.appending("uid"), "uid \(uid) is already taken by \(first)",
                                   valid: "a uid of its own for each user")
                    continue
                }
                uids[uid] = elementPath
            }
            users.append((JailUserSpec(name: name, uid: draft.uid, gid: draft.gid, home: home, shell: draft.shell), index))
        }
        return users
    }

    /// What needs the whole file: each home lies in a writable volume of this jail.
    static func check(_ draft: JailSchema.Draft, context: inout SpecContext) {
        let writable = draft.volumes.filter { !$0.readonly }.map(\.target)
        for (user, index) in zip(draft.users, draft.userIndices)
        where !writable.contains(where: { user.home == $0 || user.home.hasPrefix($0 + "/") }) {
            let path = TOMLKeyPath.root.appending("users").appending(index: index).appending("home")
            let targets = writable.isEmpty ? "the jail has no writable volume" : "writable volumes: \(writable.joined(separator: ", "))"
            context.report(path, "\(user.home) is not inside a writable volume of the jail (\(targets))",
                           valid: "a home below the target of a [[volumes]] entry without readonly = true")
        }
    }
}
