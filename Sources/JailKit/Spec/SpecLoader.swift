import Foundation
import TOMLKit

/// Reads spec files into validated models, collecting every diagnostic on the way.
///
/// A file with errors yields no model but all of its diagnostics; warnings never block.
public enum SpecLoader {
    public static let imagesDirectory = "Images"
    public static let jailsDirectory = "Jails"
    public static let fileExtension = ".toml"

    // MARK: directory

    /// Loads `directory/Images/*.toml` and `directory/Jails/*.toml`, then checks what spans
    /// files (a jail's image must exist). Diagnostics come sorted by file and position.
    /// `portWarnings: false` skips the scan of the host's listening sockets (a warning
    /// only, and slow on a host with many sockets): commands that start no jail (build)
    /// need none.
    public static func load(directory: String, hostChecks: Bool = true, portWarnings: Bool = true) -> (SpecSet, [SpecDiagnostic]) {
        var set = SpecSet()
        var diagnostics: [SpecDiagnostic] = []
        let imagesPath = join(directory, imagesDirectory)
        let jailsPath = join(directory, jailsDirectory)

        let imageFiles = tomlFiles(in: imagesPath)
        let jailFiles = tomlFiles(in: jailsPath)
        if imageFiles == nil && jailFiles == nil {
            diagnostics.append(
                SpecDiagnostic(
                    file: directory, line: 1, column: 1, field: "",
                    message: "not a spec directory (no \(imagesDirectory)/ and no \(jailsDirectory)/)",
                    valid: "a directory holding \(imagesDirectory)/*.toml and \(jailsDirectory)/*.toml"))
            return (set, diagnostics)
        }

        let (host, hostDiagnostics) = loadHost(directory: directory)
        diagnostics += hostDiagnostics
        set.host = host ?? HostSettings()

        // Every image file counts as existing for the cross-file check, even a broken one:
        // its own diagnostics explain it, and "missing image" on top would mislead.
        var imageNames = Set<String>()
        for fileName in imageFiles ?? [] {
            let name = String(fileName.dropLast(fileExtension.count))
            imageNames.insert(name)
            let file = join(imagesPath, fileName)
            guard let source = read(file, into: &diagnostics) else { continue }
            let (image, found) = parseImage(source: source, file: file, name: name, hostChecks: hostChecks)
            diagnostics += found
            if let image { set.images[name] = image }
        }

        var maps: [String: (String, TOMLSourceMap)] = [:]
        for fileName in jailFiles ?? [] {
            let name = String(fileName.dropLast(fileExtension.count))
            let file = join(jailsPath, fileName)
            guard let source = read(file, into: &diagnostics) else { continue }
            if name.hasSuffix("@") {
                let (template, found) = parseTemplate(source: source, file: file, name: name, images: imageNames,
                                                      validImages: Set(set.images.keys), hostChecks: hostChecks)
                diagnostics += found
                if let template { set.templates[template.base] = template }
                continue
            }
            var context = SpecContext(file: file, map: TOMLSourceMap(source: source), hostChecks: hostChecks)
            let (jail, image) = decodeJail(source: source, name: name, context: &context)
            if let image {
                checkImageExists(image, images: imageNames, valid: Set(set.images.keys), context: &context)
            }
            diagnostics += sorted(context.diagnostics)
            if let jail, !context.hasErrors { set.jails[name] = jail }
            maps[name] = (file, context.map)
        }
        diagnostics += checkOrder(set: &set, jailNames: Set(maps.keys), maps: maps, hostChecks: hostChecks)
        diagnostics += checkPorts(set: &set, maps: maps, hostChecks: hostChecks, listening: hostChecks && portWarnings)
        diagnostics += checkJailUsers(set: &set, maps: maps, hostChecks: hostChecks)
        return (set, diagnostics)
    }

    /// A jail's own user may not take a name its image holds because other jails of the
    /// image run as it (the image's passwd has it): the jail's passwd would name it twice.
    static func checkJailUsers(set: inout SpecSet, maps: [String: (String, TOMLSourceMap)], hostChecks: Bool) -> [SpecDiagnostic] {
        var out: [SpecDiagnostic] = []
        for (name, jail) in set.jails where !jail.users.isEmpty {
            guard let (file, map) = maps[name] else { continue }
            let imageUsers = Set(JailManager.identities(of: jail.image, in: set).users)
            var context = SpecContext(file: file, map: map, hostChecks: hostChecks)
            for (i, u) in jail.users.enumerated() where imageUsers.contains(u.name) {
                context.report(TOMLKeyPath.root.appending("users").appending(index: i).appending("name"),
                               "\"\(u.name)\" is a user of image \(jail.image) (another of its jails runs as it)",
                               valid: "a name no jail of image \(jail.image) uses as user or owner")
            }
            if context.hasErrors { set.jails[name] = nil }
            out += context.diagnostics
        }
        return sorted(out)
    }

    /// `after` names jails that exist and has no cycles; offending jails are dropped from
    /// the set with an error at the entry that names the missing jail or closes the cycle.
    static func checkOrder(set: inout SpecSet, jailNames: Set<String>, maps: [String: (String, TOMLSourceMap)],
                           hostChecks: Bool) -> [SpecDiagnostic]
    {
        var out: [SpecDiagnostic] = []
        func report(_ jail: String, _ index: Int, _ message: String, _ valid: String) {
            guard let (file, map) = maps[jail] else { return }
            var context = SpecContext(file: file, map: map, hostChecks: hostChecks)
            context.report(TOMLKeyPath.root.appending("after").appending(index: index), message, valid: valid)
            out += context.diagnostics
        }
        var bad: Set<String> = []
        for (name, jail) in set.jails {
            for (i, dep) in jail.supervision.after.enumerated() where !jailNames.contains(dep) || dep == name {
                report(name, i, dep == name ? "a jail cannot start after itself" : "no jail \"\(dep)\"",
                       "names of files in \(jailsDirectory)/ without .toml")
                bad.insert(name)
            }
        }
        // Depth-first search; a back edge closes a cycle.
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        func visit(_ name: String, path: [String]) {
            state[name] = 1
            for (i, dep) in (set.jails[name]?.supervision.after ?? []).enumerated() {
                if state[dep] == 1 {
                    let cycle = (path + [name]).drop { $0 != dep } + [dep]
                    report(name, i, "start order has a cycle: \(cycle.joined(separator: " -> "))",
                           "remove one of these \"after\" entries")
                    bad.formUnion(cycle)
                } else if state[dep] == nil, set.jails[dep] != nil {
                    visit(dep, path: path + [name])
                }
            }
            state[name] = 2
        }
        for name in set.jails.keys.sorted() where state[name] == nil { visit(name, path: []) }
        for name in bad { set.jails[name] = nil }
        return sorted(out)
    }

    // MARK: single files

    /// `directory/jailctl.toml`: the defaults when the file is absent, nil when it has errors.
    public static func loadHost(directory: String) -> (HostSettings?, [SpecDiagnostic]) {
        let file = join(directory, HostSettings.fileName)
        guard FileManager.default.fileExists(atPath: file) else { return (HostSettings(), []) }
        var diagnostics: [SpecDiagnostic] = []
        guard let source = read(file, into: &diagnostics) else { return (nil, diagnostics) }
        return parseHost(source: source, file: file)
    }

    public static func parseHost(source: String, file: String) -> (HostSettings?, [SpecDiagnostic]) {
        var context = SpecContext(file: file, map: TOMLSourceMap(source: source), hostChecks: false)
        guard let table = parseDocument(source, context: &context) else { return (nil, sorted(context.diagnostics)) }
        var host = HostSettings()
        context.decode(table, at: .root, fields: HostSchema.fields, into: &host, what: HostSettings.fileName)
        return (context.hasErrors ? nil : host, sorted(context.diagnostics))
    }

    public static func parseImage(
        source: String, file: String, name: String, hostChecks: Bool = true
    ) -> (ImageSpec?, [SpecDiagnostic]) {
        var context = SpecContext(file: file, map: TOMLSourceMap(source: source), hostChecks: hostChecks)
        let specName = checkName(name, plain: true, context: &context)
        guard let table = parseDocument(source, context: &context) else { return (nil, sorted(context.diagnostics)) }
        var draft = ImageSchema.Draft()
        context.decode(table, at: .root, fields: ImageSchema.fields, into: &draft, what: "an image file")
        ImageSchema.checkContent(draft, table: table, context: &context)
        guard let specName, !context.hasErrors else { return (nil, sorted(context.diagnostics)) }
        let image = ImageSchema.spec(from: draft, name: specName.description, file: file)
        return (image, sorted(context.diagnostics))
    }

    /// Checks one jail file on its own; whether its image exists is `load`'s business.
    public static func parseJail(source: String, file: String, name: String) -> (JailSpec?, [SpecDiagnostic]) {
        var context = SpecContext(file: file, map: TOMLSourceMap(source: source), hostChecks: false)
        let jail = decodeJail(source: source, name: name, context: &context).jail
        return (context.hasErrors ? nil : jail, sorted(context.diagnostics))
    }

    /// Returns the image name whenever the `image` key itself is usable, even if other keys
    /// have errors, so `load` can still report a missing image in the same run; callers drop
    /// the jail when the context has errors.
    static func decodeJail(source: String, name: String, context: inout SpecContext) -> (jail: JailSpec?, image: String?) {
        var specName = checkName(name, context: &context)
        if let n = specName, n.isInstance {
            // Instances come from their template; a file of that name would be a second,
            // different definition of the same jail.
            context.report(at: .start, field: "name",
                           "\"\(name)\" is an instance name (taken from the file name); instances are made from the template \(n.base)@.toml",
                           valid: "name the file \(n.base).toml (a jail) or \(n.base)@.toml (a template)")
            specName = nil
        }
        guard let table = parseDocument(source, context: &context) else { return (nil, nil) }
        return decodeJail(table: table, specName: specName, context: &context)
    }

    static func decodeJail(table: [String: TOMLNode], specName: SpecName?, context: inout SpecContext)
        -> (jail: JailSpec?, image: String?)
    {
        var draft = JailSchema.Draft()
        context.decode(table, at: .root, fields: JailSchema.fields, into: &draft, what: "a jail file")
        TenantSchema.check(draft, context: &context)
        JailUserSchema.check(draft, context: &context)
        JailSchema.checkIdmap(table, draft: draft, context: &context)
        guard let specName, let image = draft.image, let command = draft.command else { return (nil, draft.image) }
        var jail = JailSpec(
            name: specName.description, file: context.file, image: image, command: command,
            user: draft.user, group: draft.group,
            hostname: draft.hostname ?? SpecRules.defaultHostname(for: specName.instance ?? specName.base),
            workdir: draft.workdir, env: draft.env, volumes: draft.volumes, stopSignal: draft.stopSignal,
            stopTimeout: draft.stopTimeout, description: draft.description)
        jail.isolation = draft.isolation
        jail.supervision = draft.supervision
        jail.network = draft.network
        jail.tenant = draft.tenant
        jail.users = draft.users
        if let backup = draft.backup {
            // The area's mounts come from [backup]; a volume of the file on one of their
            // targets would shadow or be shadowed by them.
            for v in backup.volumes {
                if let i = draft.volumes.firstIndex(where: { $0.target == v.target }) {
                    context.report(TOMLKeyPath.root.appending("volumes").appending(index: i).appending("target"),
                                   "\(v.target) is mounted by [backup] (the backup area)",
                                   valid: "leave \(v.target) to [backup], or mount elsewhere")
                }
            }
            if !draft.isolation.userns {
                // Without a user namespace the backup user would be a real host uid.
                context.report(TOMLKeyPath.root.appending("backup"), atValue: false, "a backup jail needs userns = true",
                               valid: "add userns = true to the jail")
            }
            jail.volumes += backup.volumes
            jail.backup = backup
        }
        return (jail, image)
    }

    // MARK: templates

    /// A template file `BASE@.toml`: parsed once and validated as the instance "example"
    /// (see `JailTemplate.Values.sample`), so its errors show up in `validate` before any
    /// instance exists. Nil when it has errors.
    static func parseTemplate(source: String, file: String, name: String, images: Set<String>, validImages: Set<String>,
                              hostChecks: Bool) -> (JailTemplate?, [SpecDiagnostic])
    {
        var context = SpecContext(file: file, map: TOMLSourceMap(source: source), hostChecks: hostChecks)
        let (specName, problem) = SpecName.parseFileName(name)
        if let problem {
            context.report(at: .start, field: "name", problem + " (taken from the file name)", valid: SpecName.instanceDescription)
        }
        guard let table = parseDocument(source, context: &context), let specName, specName.isTemplate else {
            return (nil, sorted(context.diagnostics))
        }
        let template = JailTemplate(base: specName.base, file: file, table: table, map: context.map)
        let (_, found) = instantiate(template, values: .sample(base: specName.base), hostChecks: hostChecks,
                                    nameInstance: false)
        context.append(found)
        if case .string(let image)? = table["image"], SpecName.parsePlain(image).problem == nil {
            checkImageExists(image, images: images, valid: validImages, context: &context)
        }
        return (context.hasErrors ? nil : template, sorted(context.diagnostics))
    }

    /// One instance of a template, validated; its diagnostics point into the template file.
    public static func instantiate(_ template: JailTemplate, values: JailTemplate.Values, hostChecks: Bool = false,
                                   nameInstance: Bool = true) -> (JailSpec?, [SpecDiagnostic])
    {
        var context = SpecContext(file: template.file, map: template.map, hostChecks: hostChecks)
        let specName = SpecName(base: template.base, instance: values.instance)
        guard SpecName.isValidBase(values.instance) else {
            context.report(at: .start, field: "name", "\"\(specName)\": \"\(values.instance)\" is not a valid instance name",
                           valid: SpecName.instanceDescription)
            return (nil, context.diagnostics)
        }
        let table = template.substitute(values, context: &context)
        let jail = decodeJail(table: table, specName: specName, context: &context).jail
        let diagnostics = sorted(context.diagnostics).map { d -> SpecDiagnostic in
            var d = d
            // Say which instance a message is about: the same line serves every instance.
            if nameInstance {
                d.message += " (in instance \(specName))"
            }
            return d
        }
        return (context.hasErrors ? nil : jail, diagnostics)
    }

    /// `images`: every image file found; `valid`: those that passed. A jail whose image file
    /// exists but has errors is refused too, so that every jail of a `SpecSet` has its image
    /// in the same set; the message then points at the image file instead of saying "missing".
    static func checkImageExists(_ image: String, images: Set<String>, valid: Set<String>, context: inout SpecContext) {
        let path = TOMLKeyPath.root.appending("image")
        let file = "\(imagesDirectory)/\(image)\(fileExtension)"
        guard images.contains(image) else {
            let known = images.sorted()
            let hint =
                SpecRules.suggestion(for: image, among: known).map { "did you mean \"\($0)\"?" }
                ?? (known.isEmpty ? "no images are defined; add \(file)" : "defined images: \(known.joined(separator: ", "))")
            context.report(path, "no image \"\(image)\" (no file \(file))", valid: hint)
            return
        }
        if !valid.contains(image) {
            context.report(path, "image \"\(image)\" has errors", valid: "fix \(file) first")
        }
    }

    // MARK: helpers

    static func checkName(_ name: String, plain: Bool = false, context: inout SpecContext) -> SpecName? {
        let (specName, problem) = plain ? SpecName.parsePlain(name) : SpecName.parse(name)
        if let problem {
            // The name comes from the file name, so the whole file is the place to point at.
            context.report(at: .start, field: "name", problem + " (taken from the file name)",
                           valid: name.contains("@") && !plain ? SpecName.instanceDescription : SpecName.validDescription)
        }
        return specName
    }

    static func parseDocument(_ source: String, context: inout SpecContext) -> [String: TOMLNode]? {
        do {
            let table = try TOMLTable(string: source)
            guard case .table(let root) = TOMLNode(table: table) else { return nil }
            return root
        } catch let error as TOMLParseError {
            let begin = error.source.begin
            context.report(
                at: SourcePosition(line: max(begin.line, 1), column: max(begin.column, 1)), field: "",
                "TOML syntax error: \(error.description)", valid: "see https://toml.io/en/v1.0.0")
            return nil
        } catch {
            context.report(at: .start, field: "", "TOML parser failed: \(error)", valid: "")
            return nil
        }
    }

    static func sorted(_ diagnostics: [SpecDiagnostic]) -> [SpecDiagnostic] {
        diagnostics.sorted(by: SpecDiagnostic.reportOrder)
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Sorted `*.toml` names in `path`, or nil when `path` is not a readable directory.
    static func tomlFiles(in path: String) -> [String]? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return nil }
        return names.filter { $0.hasSuffix(fileExtension) && !$0.hasPrefix(".") }.sorted()
    }

    static func read(_ file: String, into diagnostics: inout [SpecDiagnostic]) -> String? {
        do {
            return try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            diagnostics.append(
                SpecDiagnostic(
                    file: file, line: 1, column: 1, field: "", message: "cannot read the file: \(error.localizedDescription)",
                    valid: "a readable UTF-8 text file"))
            return nil
        }
    }
}
