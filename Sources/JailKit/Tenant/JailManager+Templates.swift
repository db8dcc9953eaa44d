#if canImport(Glibc)
import Glibc
#endif

/// Instances of templates (`php-tenant@alice`) inside the jail lifecycle.
extension JailManager {
    /// `<state root>/tenants`: each instance's host directory (`%h`) is below it.
    public var tenantsDirectory: String { root.path + "/tenants" }

    public func instanceHome(_ instance: String) -> String { tenantsDirectory + "/" + instance }

    /// The directory of the running executable: jailctl's helpers (jailctl-sendmail) are
    /// built and installed next to it.
    public static var executableDirectory: String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return "/usr/local/lib/jailctl" }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
    }

    public func templateValues(base: String, instance: String) -> JailTemplate.Values {
        JailTemplate.Values(instance: instance, base: base, home: instanceHome(instance), libexec: Self.executableDirectory)
    }

    /// The spec of `BASE@INSTANCE`: the template filled in, then a tenant's own limits over
    /// the template's. Errors name the template's file and line.
    func instanceSpec(_ name: SpecName, in set: SpecSet) throws -> JailSpec {
        guard let instance = name.instance, let template = set.templates[name.base] else {
            let known = set.templates.keys.sorted().map { $0 + "@" }.joined(separator: ", ")
            throw JailError(.notFound, "no template \(name.base)@ in \(specsDirectory)/Jails (no file \(name.base)@.toml; templates: \(known.isEmpty ? "none" : known))")
        }
        let (spec, diagnostics) = SpecLoader.instantiate(template, values: templateValues(base: name.base, instance: instance),
                                                         hostChecks: true)
        for w in diagnostics where !w.isError { logger.warning("\(w.description)") }
        guard var spec, !diagnostics.contains(where: \.isError) else {
            throw JailError(.invalidSpec, diagnostics.filter(\.isError).map(\.description).joined(separator: "\n"))
        }
        if let t = try state.tenant(instance), t.template == name.base {
            spec.isolation.limits = t.apply(to: spec.isolation.limits)
        }
        return spec
    }

    /// The spec of a plain jail or of an instance, from freshly loaded specs; nil when
    /// neither the jail nor its template is defined (any other problem throws). The
    /// supervisor's view of a jail: instances are restarted and health-checked like any.
    public func definedSpec(_ name: String, in specs: SpecSet? = nil) throws -> JailSpec? {
        let set = try specs ?? loadSpecs()
        guard let n = SpecName.parse(name).name, n.isInstance else { return set.jails[name] }
        guard set.templates[n.base] != nil else { return nil }
        return try instanceSpec(n, in: set)
    }

    /// The jails a name or pattern stands for. `BASE@*` is every instance jailctl knows of
    /// that template: its tenants and the instances it has records of.
    public func expandNames(_ names: [String]) throws -> [String] {
        var out: [String] = []
        for n in names {
            guard n.hasSuffix("@*") else {
                out.append(n)
                continue
            }
            let base = String(n.dropLast(2))
            guard SpecName.isValidBase(base) else { throw JailError(.invalidSpec, "\"\(n)\": \"\(base)\" is not a template name") }
            var found = Set(try state.tenants().filter { $0.template == base }.map(\.jail))
            found.formUnion(try state.jails().map(\.name).filter { $0.hasPrefix(base + "@") })
            out += found.sorted()
        }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }
}
