import GRDB

/// A hosting tenant: one instance of a template (`php-tenant@alice`), with the overrides
/// of the template's limits given at `tenant add`.
public struct TenantRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tenants"
    /// The instance name (`alice`).
    public var name: String
    /// The template's base name (`php-tenant`).
    public var template: String
    public var domain: String
    public var memory: Int64?
    public var pids: Int?
    public var cpu: Double?
    public var nofile: Int64?
    public var createdAt: Double

    public var jail: String { template + "@" + name }

    public init(name: String, template: String, domain: String, memory: UInt64? = nil, pids: Int? = nil, cpu: Double? = nil,
                nofile: UInt64? = nil, createdAt: Double)
    {
        self.name = name
        self.template = template
        self.domain = domain
        self.memory = memory.map { Int64(clamping: $0) }
        self.pids = pids
        self.cpu = cpu
        self.nofile = nofile.map { Int64(clamping: $0) }
        self.createdAt = createdAt
    }

    /// The template's limits with this tenant's overrides.
    public func apply(to limits: LimitsSpec) -> LimitsSpec {
        var l = limits
        if let memory { l.memory = UInt64(memory) }
        if let pids { l.pids = pids }
        if let cpu { l.cpu = cpu }
        if let nofile { l.nofile = UInt64(nofile) }
        return l
    }
}

extension StateStore {
    /// A new table only; no existing table changes.
    static func registerTenantMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v5-tenants") { db in
            try db.create(table: "tenants") { t in
                t.column("name", .text).primaryKey()
                t.column("template", .text).notNull()
                t.column("domain", .text).notNull().unique()
                t.column("memory", .integer)
                t.column("pids", .integer)
                t.column("cpu", .double)
                t.column("nofile", .integer)
                t.column("createdAt", .double).notNull()
            }
        }
    }

    public func tenant(_ name: String) throws -> TenantRecord? {
        try db.read { try TenantRecord.fetchOne($0, key: name) }
    }

    public func tenants() throws -> [TenantRecord] {
        try db.read { try TenantRecord.order(Column("name")).fetchAll($0) }
    }

    public func save(_ tenant: TenantRecord) throws {
        try db.write { try tenant.save($0) }
    }

    public func deleteTenant(_ name: String) throws {
        _ = try db.write { try TenantRecord.deleteOne($0, key: name) }
    }
}
