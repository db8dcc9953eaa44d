import CSQLiteTuning
import GRDB

/// What jailctl knows about a jail between commands.
public struct JailRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "jails"

    public enum State: String, Codable, Sendable {
        case running, exited, stopped
    }

    public var name: String
    public var image: String
    public var imageHash: String
    public var state: State
    public var pid: Int32
    public var startTime: Int64
    public var monitorPid: Int32
    public var startedAt: Double
    public var endedAt: Double?
    /// The raw wait status, when the jail has exited.
    public var exitStatus: Int32?
    public var specFile: String
    /// What the sysadmin asked for last: the supervisor restarts only jails wanted up.
    public var wanted: Bool = true
    /// Failed runs in a row (runs shorter than restart_reset); drives the backoff.
    public var failures: Int = 0
    /// Too many restarts within the window: no more until `jailctl reset`.
    public var crashLoop: Bool = false
}

public struct ImageRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "images"
    public var name: String
    public var hash: String
    public var builtAt: Double
    public var files: Int
    public var bytes: Int64
    public var specFile: String
}

public struct EventRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "events"
    public var id: Int64?
    public var time: Double
    public var jail: String
    public var kind: String
    public var detail: String
}

/// The SQLite state database (WAL), with migrations from the first version on.
public final class StateStore: Sendable {
    public let db: DatabaseQueue

    public init(path: String) throws {
        var config = Configuration()
        // Several CLI calls may touch the database at once; wait instead of failing.
        config.busyMode = .timeout(10)
        // Each command is a short process: a checkpoint at every close cost two fsyncs, and
        // deleting the WAL made the next command create it again (a directory fsync).
        // Committed transactions are durable in the WAL already; SQLite checkpoints it
        // when it grows (1000 pages).
        config.prepareDatabase { db in
            let rc = ResultCode(rawValue: jl_sqlite_no_checkpoint_on_close(db.sqliteConnection))
            guard rc == .SQLITE_OK else { throw DatabaseError(resultCode: rc, message: "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE") }
        }
        do {
            db = try DatabaseQueue(path: path, configuration: config)
            try db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode=WAL") }
            try Self.migrator.migrate(db)
        } catch {
            throw JailError(.state, "state database \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "images") { t in
                t.column("name", .text).primaryKey()
                t.column("hash", .text).notNull()
                t.column("builtAt", .double).notNull()
                t.column("files", .integer).notNull()
                t.column("bytes", .integer).notNull()
                t.column("specFile", .text).notNull()
            }
            try db.create(table: "jails") { t in
                t.column("name", .text).primaryKey()
                t.column("image", .text).notNull()
                t.column("imageHash", .text).notNull()
                t.column("state", .text).notNull()
                t.column("pid", .integer).notNull()
                t.column("startTime", .integer).notNull()
                t.column("monitorPid", .integer).notNull()
                t.column("startedAt", .double).notNull()
                t.column("endedAt", .double)
                t.column("exitStatus", .integer)
                t.column("specFile", .text).notNull()
            }
            try db.create(table: "events") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .double).notNull()
                t.column("jail", .text).notNull().indexed()
                t.column("kind", .text).notNull()
                t.column("detail", .text).notNull()
            }
        }
        m.registerMigration("v2-idranges") { db in
            // One range of host uids/gids per user-namespaced jail, kept across restarts so
            // files it wrote stay its own; no two jails ever share one.
            try db.create(table: "idranges") { t in
                t.column("jail", .text).primaryKey()
                t.column("base", .integer).notNull().unique()
                t.column("size", .integer).notNull()
            }
        }
        m.registerMigration("v3-network") { db in
            // One routed /31 per private-network jail (IPAM.swift): the jail's address is
            // unique; the host side is the even address just below it.
            try db.create(table: "leases") { t in
                t.column("jail", .text).primaryKey()
                t.column("address", .integer).notNull().unique()
                t.column("leasedAt", .double).notNull()
            }
        }
        m.registerMigration("v4-supervisor") { db in
            try db.alter(table: "jails") { t in
                t.add(column: "wanted", .boolean).notNull().defaults(to: true)
                t.add(column: "failures", .integer).notNull().defaults(to: 0)
                t.add(column: "crashLoop", .boolean).notNull().defaults(to: false)
            }
        }
        registerTenantMigration(&m)
        registerImagePinMigration(&m)
        m.registerMigration("v6-leases6") { db in
            // One routed /127 per jail from the host's pool6 (IPAM6), beside its IPv4
            // lease; text in the canonical form, unique like the IPv4 column.
            try db.create(table: "leases6") { t in
                t.column("jail", .text).primaryKey()
                t.column("address", .text).notNull().unique()
                t.column("leasedAt", .double).notNull()
            }
        }
        return m
    }

    /// The first id of each range; ranges start well above the host's own users and the
    /// subuid ranges useradd hands out (100000 + 65536 n for the first hundreds of users).
    public static let idRangeStart: UInt32 = 0x1000_0000
    public static let idRangeSize: UInt32 = 65536

    /// The jail's uid/gid range, leased on first use. Serialized by SQLite's write lock.
    public func idRange(for jail: String) throws -> (base: UInt32, size: UInt32) {
        try db.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT base, size FROM idranges WHERE jail = ?", arguments: [jail]),
               let base = row["base"] as Int64?, let size = row["size"] as Int64?
            {
                return (UInt32(base), UInt32(size))
            }
            let used = Set(try Int64.fetchAll(db, sql: "SELECT base FROM idranges"))
            var slot: Int64 = 0
            while used.contains(Int64(Self.idRangeStart) + slot * Int64(Self.idRangeSize)) { slot += 1 }
            let base = Int64(Self.idRangeStart) + slot * Int64(Self.idRangeSize)
            guard base + Int64(Self.idRangeSize) <= Int64(UInt32.max) else {
                throw JailError(.state, "no free uid range left for jail \(jail)")
            }
            try db.execute(sql: "INSERT INTO idranges (jail, base, size) VALUES (?, ?, ?)",
                           arguments: [jail, base, Int64(Self.idRangeSize)])
            return (UInt32(base), Self.idRangeSize)
        }
    }

    /// The jail's range if it has one; never leases.
    public func existingIdRange(for jail: String) throws -> (base: UInt32, size: UInt32)? {
        try db.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT base, size FROM idranges WHERE jail = ?", arguments: [jail]),
                  let base = row["base"] as Int64?, let size = row["size"] as Int64? else { return nil }
            return (UInt32(base), UInt32(size))
        }
    }

    public func releaseIdRange(for jail: String) throws {
        try db.write { try $0.execute(sql: "DELETE FROM idranges WHERE jail = ?", arguments: [jail]) }
    }

    public func jail(_ name: String) throws -> JailRecord? {
        try db.read { try JailRecord.fetchOne($0, key: name) }
    }

    public func jails() throws -> [JailRecord] {
        try db.read { try JailRecord.order(Column("name")).fetchAll($0) }
    }

    public func save(_ record: JailRecord) throws {
        try db.write { try record.save($0) }
    }

    /// Marks one run of a jail (named by its start time) as exited, and only once: several
    /// processes (CLI calls, the supervisor) may notice the same exit. Returns whether this
    /// call was the one that recorded it, in which case it also adds the "exit" event.
    public func markExited(_ name: String, startTime: Int64, exitStatus: Int32?, endedAt: Double, detail: String) throws -> Bool {
        try db.write { db in
            try db.execute(sql: """
                UPDATE jails SET state = 'exited', exitStatus = ?, endedAt = ?
                WHERE name = ? AND state = 'running' AND startTime = ?
                """, arguments: [exitStatus, endedAt, name, startTime])
            guard db.changesCount > 0 else { return false }
            // The time of death as the monitor saw it, not of our noticing.
            try EventRecord(id: nil, time: endedAt, jail: name, kind: "exit", detail: detail).insert(db)
            return true
        }
    }

    /// Updates only the supervisor's columns, never a whole record read earlier (a CLI
    /// call may have changed others in between).
    public func setSupervision(_ name: String, failures: Int? = nil, crashLoop: Bool? = nil, wanted: Bool? = nil) throws {
        try db.write { db in
            if let failures { try db.execute(sql: "UPDATE jails SET failures = ? WHERE name = ?", arguments: [failures, name]) }
            if let crashLoop { try db.execute(sql: "UPDATE jails SET crashLoop = ? WHERE name = ?", arguments: [crashLoop, name]) }
            if let wanted { try db.execute(sql: "UPDATE jails SET wanted = ? WHERE name = ?", arguments: [wanted, name]) }
        }
    }

    public func deleteJail(_ name: String) throws {
        _ = try db.write { try JailRecord.deleteOne($0, key: name) }
    }

    public func image(_ name: String) throws -> ImageRecord? {
        // Plain SQL: a lookup by key makes GRDB read the table's schema first.
        try db.read { try ImageRecord.fetchOne($0, sql: "SELECT * FROM images WHERE name = ?", arguments: [name]) }
    }

    public func images() throws -> [ImageRecord] {
        try db.read { try ImageRecord.order(Column("name")).fetchAll($0) }
    }

    public func save(_ record: ImageRecord) throws {
        try db.write { try record.save($0) }
    }

    /// The record and the event of its build in one transaction: one fsync, not two.
    public func save(_ record: ImageRecord, event: EventRecord) throws {
        try db.write { db in
            try record.save(db)
            try event.insert(db)
        }
    }

    public func record(event kind: String, jail: String, detail: String, time: Double = wallClock()) throws {
        try db.write { try EventRecord(id: nil, time: time, jail: jail, kind: kind, detail: detail).insert($0) }
    }

    public func events(jail: String? = nil, limit: Int = 100) throws -> [EventRecord] {
        try db.read { db in
            var q = EventRecord.order(Column("id").desc).limit(limit)
            if let jail { q = q.filter(Column("jail") == jail) }
            return try q.fetchAll(db).reversed()
        }
    }
}
