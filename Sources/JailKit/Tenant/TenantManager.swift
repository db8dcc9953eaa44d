#if canImport(Glibc)
import Glibc
#endif

/// What `tenant show` and `tenant list` report about one tenant.
public struct TenantInfo: Sendable, Equatable, Codable {
    public struct Limits: Sendable, Equatable, Codable {
        public var memory: UInt64?
        public var pids: Int?
        public var cpu: Double?
        public var nofile: UInt64
    }
    public var name: String
    public var jail: String
    public var template: String
    public var domain: String
    /// The user php-fpm runs as, inside the jail and on the host.
    public var uid: UInt32
    public var gid: UInt32
    public var hostUid: UInt32?
    public var hostGid: UInt32?
    /// The web root on the host (what nginx serves static files from).
    public var webroot: String
    /// The web root inside the jail (DOCUMENT_ROOT of the tenant's PHP).
    public var documentRoot: String
    /// The FastCGI socket on the host (what nginx passes .php to).
    public var socket: String
    public var home: String
    public var limits: Limits
    public var state: String
}

/// Options of `tenant add` beyond the name: the domain and overrides of the template's limits.
public struct TenantOptions: Sendable {
    public var template = "php-tenant"
    public var domain: String?
    public var memory: UInt64?
    public var pids: Int?
    public var cpu: Double?
    public var nofile: UInt64?
    /// The group the web server runs as: it alone (with the tenant) may enter the
    /// tenant's socket directory and home.
    public var webGroup = "www-data"
    public init() {}
}

/// Hosting tenants: one instance of a template per tenant (`php-tenant@alice`), its host
/// directories, its php-fpm pool, and the nginx server block that serves it.
public struct TenantManager {
    public let jails: JailManager

    public init(jails: JailManager) { self.jails = jails }

    var state: StateStore { jails.state }

    // MARK: add

    /// Validates everything first (name, domain, the instance's spec, the web server's
    /// group), so bad input changes nothing; then records the tenant, makes its
    /// directories with their owners, and brings its jail up.
    @discardableResult
    public func add(_ name: String, options o: TenantOptions) throws -> TenantInfo {
        guard SpecName.isValidBase(name) else {
            throw JailError(.invalidSpec, "tenant \"\(name)\": not a valid name; \(SpecName.validDescription)")
        }
        let domain = o.domain ?? name + ".test"
        guard Self.isDomain(domain) else {
            throw JailError(.invalidSpec, "tenant \(name): \"\(domain)\" is not a domain name (letters, digits, '-' and '.')")
        }
        if let other = try state.tenants().first(where: { $0.domain == domain && $0.name != name }) {
            throw JailError(.busy, "tenant \(name): domain \(domain) belongs to tenant \(other.name)")
        }
        if let existing = try state.tenant(name), existing.template != o.template {
            throw JailError(.busy, "tenant \(name) exists from template \(existing.template)")
        }
        guard let webGid = Self.groupID(o.webGroup) else {
            throw JailError(.invalidSpec, "tenant \(name): no group \"\(o.webGroup)\" on this host (the web server's group)")
        }
        let jail = o.template + "@" + name
        let set = try jails.loadSpecs()
        var spec = try jails.jailSpec(jail, in: set)
        guard let t = spec.tenant else {
            throw JailError(.invalidSpec, "template \(o.template)@ has no [tenant] table (\(set.templates[o.template]?.file ?? ""))")
        }
        guard spec.isolation.userns else {
            throw JailError(.invalidSpec, "template \(o.template)@: a tenant's jail needs userns = true (\(spec.file))")
        }
        let record = TenantRecord(name: name, template: o.template, domain: domain, memory: o.memory, pids: o.pids, cpu: o.cpu,
                                  nofile: o.nofile, createdAt: try state.tenant(name)?.createdAt ?? wallClock())
        spec.isolation.limits = record.apply(to: spec.isolation.limits)
        let prepared = try jails.prepare(spec, set: set, skipVolumes: true)

        // A new tenant whose jail fails to come up leaves nothing: no record, no uid range,
        // no directories. An existing tenant keeps what it had.
        let isNew = try state.tenant(name) == nil
        let home = jails.instanceHome(name)
        let hadHome = FS.exists(home)
        let hadRange = try state.existingIdRange(for: jail) != nil
        var undo = Rollback(logger: jails.logger)
        defer { undo.run() }
        try state.save(record)
        if isNew { undo.add("forget tenant \(name)") { try self.state.deleteTenant(name) } }
        let range = try state.idRange(for: jail)
        if !hadRange { undo.add("release the uid range of \(jail)") { try self.state.releaseIdRange(for: jail) } }
        if !hadHome { undo.add("remove \(home)") { try FS.removeTree(home) } }
        let owner = (uid: range.base + prepared.uid, gid: range.base + prepared.gid)
        try makeDirectories(spec, tenant: t, owner: owner, jailRoot: range.base, webGid: webGid)
        try jails.writeTenantConfig(spec)
        let up = try jails.up(jail)
        undo.commit()
        if up.alreadyRunning {
            jails.logger.info("tenant \(name): jail \(jail) was running; restart it to apply changed limits or pool settings")
        }
        return try info(name)
    }

    /// The two host directories whose group is the web server's, a host group that the
    /// jail's id map cannot name (so `[[volumes]] create/owner/mode` cannot make them); the
    /// template's other volumes are made by `up` with `create = true`.
    ///  - home (`%h`): the jail's root (which mounts the volumes below it, inside its user
    ///    namespace, and which no process of the jail runs as), group of the web server,
    ///    0750: no other tenant or host user gets in.
    ///  - the socket's directory: the tenant, group of the web server, 0750.
    func makeDirectories(_ spec: JailSpec, tenant t: TenantSpec, owner: (uid: UInt32, gid: UInt32), jailRoot: UInt32,
                         webGid: UInt32) throws
    {
        let home = jails.instanceHome(String(spec.name.split(separator: "@").last ?? ""))
        try FS.mkdirs(jails.tenantsDirectory, mode: 0o711)
        try ensureDirectory(home, uid: jailRoot, gid: webGid, mode: 0o750)
        if let v = spec.volumes.first(where: { $0.target == t.socketDirectory }), v.source.hasPrefix(home + "/") {
            try ensureDirectory(v.source, uid: owner.uid, gid: webGid, mode: 0o750)
        }
    }

    /// Creates `path` (parents as root 0755) or fixes an existing directory: never follows
    /// a symlink a tenant may have planted (the directories it owns are its to change).
    func ensureDirectory(_ path: String, uid: UInt32, gid: UInt32, mode: mode_t) throws {
        let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !parent.isEmpty { try FS.mkdirs(parent, mode: 0o755) }
        if mkdir(path, mode) < 0 && errno != EEXIST { throw SystemError("mkdir \(path)") }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw SystemError("open \(path) (a directory, not a symlink)") }
        defer { close(fd) }
        try check("chown \(path)", fchown(fd, uid, gid))
        try check("chmod \(path)", fchmod(fd, mode))
    }

    // MARK: remove

    /// Stops the tenant's jail and forgets the tenant. With `purge`, its jail record, id
    /// range, logs and host directory (web root, sessions, mail) go too.
    public func remove(_ name: String, purge: Bool) throws {
        guard let t = try state.tenant(name) else { throw JailError(.notFound, "no tenant \(name)") }
        if purge {
            try jails.purge(t.jail)
            let home = jails.instanceHome(name)
            // The web root holds the tenant's files, owned by its uids: removed without
            // following any symlink the tenant made (FS.removeTree does not follow).
            try FS.removeTree(home)
        } else {
            _ = try jails.down(t.jail)
        }
        try state.deleteTenant(name)
    }

    // MARK: show

    public func info(_ name: String) throws -> TenantInfo {
        guard let t = try state.tenant(name) else { throw JailError(.notFound, "no tenant \(name)") }
        let set = try jails.loadSpecs()
        let spec = try jails.jailSpec(t.jail, in: set)
        guard let ts = spec.tenant else { throw JailError(.invalidSpec, "template \(t.template)@ has no [tenant] table") }
        func host(_ inside: String) -> String {
            spec.volumes.first { $0.target == inside }?.source ?? ""
        }
        let socketDir = host(ts.socketDirectory)
        let socket = socketDir + "/" + String(ts.socket.split(separator: "/").last ?? "")
        var uid: UInt32, gid: UInt32
        switch (spec.user, spec.group) {
        case (.id(let u), .id(let g)?):
            (uid, gid) = (u, g)
        default:
            // A name: only the image's passwd knows its ids (this builds a missing image).
            let p = try jails.prepare(spec, set: set, skipVolumes: true)
            (uid, gid) = (p.uid, p.gid)
        }
        let range = try state.existingIdRange(for: t.jail)
        let status = try jails.status(of: t.jail)
        let l = spec.isolation.limits
        return TenantInfo(name: t.name, jail: t.jail, template: t.template, domain: t.domain, uid: uid, gid: gid,
                          hostUid: range.map { $0.base + uid }, hostGid: range.map { $0.base + gid },
                          webroot: host(ts.webroot), documentRoot: ts.webroot, socket: socket, home: jails.instanceHome(name),
                          limits: .init(memory: l.memory, pids: l.pids, cpu: l.cpu, nofile: l.nofile),
                          state: status?.summary ?? "never started")
    }

    public func list() throws -> [TenantInfo] {
        try state.tenants().map { try info($0.name) }
    }

    // MARK: nginx

    public func nginxConfig(_ name: String, listen: String = "80") throws -> String {
        let i = try info(name)
        let spec = try jails.jailSpec(i.jail, in: jails.loadSpecs())
        guard let t = spec.tenant else { throw JailError(.invalidSpec, "\(i.jail): no [tenant] table") }
        return NginxConfig.render(.init(domain: i.domain, listen: listen, webroot: i.webroot, documentRoot: i.documentRoot,
                                        socket: i.socket, tenant: i.name, maxBody: t.php.memoryLimit))
    }

    // MARK: helpers

    static func isDomain(_ d: String) -> Bool {
        guard !d.isEmpty, d.count <= 253, !d.hasPrefix("."), !d.hasSuffix("."), !d.contains("..") else { return false }
        return d.split(separator: ".").allSatisfy { label in
            label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    static func groupID(_ name: String) -> UInt32? {
        guard let g = getgrnam(name) else { return nil }
        return g.pointee.gr_gid
    }
}

extension JailManager {
    /// Writes a tenant jail's php-fpm configuration to the host source of its
    /// `php_config` volume (root-owned, read-only in the jail). `up` calls this, so the
    /// pool always matches the spec the jail starts from.
    public func writeTenantConfig(_ spec: JailSpec) throws {
        guard let t = spec.tenant, let v = spec.volumes.first(where: { $0.target == t.phpConfig }) else { return }
        let pool = String(spec.name.split(separator: "@").last ?? Substring(spec.name))
        let dir = String(v.source[..<(v.source.lastIndex(of: "/") ?? v.source.startIndex)])
        if !dir.isEmpty { try FS.mkdirs(dir, mode: 0o755) }
        try FS.writeAtomically(v.source, PHPPoolConfig.render(pool: pool, tenant: t, timezone: PHPPoolConfig.hostTimezone()),
                               mode: 0o644)
    }
}
