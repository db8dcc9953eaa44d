#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch
import GRDB

/// An image version a starting jail is about to run: `up` resolves the version and
/// launches it before the jail's record names it, and without a pin a rebuild plus a
/// `gc` in between could remove the tree the jail is about to mount. A pin is a row
/// naming the version and the process that holds it (pid and start time, so a pin
/// left by a killed `up` holds nothing: gc drops it); it is taken under the store lock
/// together with the resolution, so gc sees either no version yet or the pin.
public struct ImagePin: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "imagePins"
    public var jail: String
    public var hash: String
    public var pid: Int32
    public var startTime: Int64

    /// Whether the process that took the pin still runs (the same one: pid and start time).
    public var isHeld: Bool {
        pid > 0 && jl_proc_start_time(pid) == UInt64(startTime)
    }

    /// A pin of this process.
    static func own(jail: String, hash: String) -> ImagePin {
        let pid = getpid()
        return ImagePin(jail: jail, hash: hash, pid: pid, startTime: Int64(jl_proc_start_time(pid)))
    }
}

extension StateStore {
    /// A new table only; no existing table changes.
    static func registerImagePinMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v6-image-pins") { db in
            try db.create(table: "imagePins") { t in
                t.column("jail", .text).notNull()
                t.column("hash", .text).notNull()
                t.column("pid", .integer).notNull()
                t.column("startTime", .integer).notNull()
                t.primaryKey(["jail", "pid", "startTime"])
            }
        }
    }

    public func save(_ pin: ImagePin) throws {
        try db.write { try pin.save($0) }
    }

    public func delete(_ pin: ImagePin) throws {
        _ = try db.write { try pin.delete($0) }
    }

    /// A jail's record and the end of the pin it started under, in one write.
    public func save(_ record: JailRecord, releasing pin: ImagePin?) throws {
        try db.write { db in
            try record.save(db)
            if let pin { _ = try pin.delete(db) }
        }
    }

    public func imagePins() throws -> [ImagePin] {
        try db.read { try ImagePin.fetchAll($0) }
    }
}
