import GRDB

/// The addresses of one jail's routed point-to-point link (RFC 3021 /31): the host side
/// is the even address, the jail the odd one just above. No bridge, so no two jails share
/// a broadcast domain.
public struct Lease: Sendable, Equatable, Hashable {
    public var jail: String
    public var jailAddress: IPv4Address
    public var hostAddress: IPv4Address { IPv4Address(jailAddress.value - 1) }
    public static let prefix = 31

    public init(jail: String, jailAddress: IPv4Address) {
        self.jail = jail
        self.jailAddress = jailAddress
    }
}

/// Leases in the state database. A lease outlives restarts and is freed only by
/// `release` (down --purge): a jail that comes back keeps its address, so links and
/// clients that know it keep working.
public struct IPAM: Sendable {
    public let store: StateStore
    public let pool: IPv4Network

    public static let defaultPool: IPv4Network = {
        guard let p = IPv4Network("10.88.0.0/16") else { preconditionFailure("the default pool literal is valid") }
        return p
    }()

    public init(store: StateStore, pool: IPv4Network = IPAM.defaultPool) {
        self.store = store
        self.pool = pool
    }

    /// The jail's lease, made on first use. A fixed address must be an odd (jail-side)
    /// address of the pool, and free; the error names the jail that holds it. The write
    /// transaction serializes concurrent `up`s, and the UNIQUE column backs it up.
    public func lease(jail: String, requested: NetworkSpec.Address = .auto) throws -> Lease {
        try store.db.write { db in try lease(in: db, jail: jail, requested: requested) }
    }

    /// As `lease`, inside the caller's write transaction (one commit for both families).
    func lease(in db: Database, jail: String, requested: NetworkSpec.Address) throws -> Lease {
        guard pool.prefix <= 30 else { throw JailError(.invalidSpec, "network pool \(pool) is too small: it needs at least a /30") }
        let existing = try Int64.fetchOne(db, sql: "SELECT address FROM leases WHERE jail = ?", arguments: [jail])
        switch requested {
        case .auto:
            if let existing, pool.contains(IPv4Address(UInt32(existing))) {
                return Lease(jail: jail, jailAddress: IPv4Address(UInt32(existing)))
            }
            // A lease from an older pool is replaced by one of the current pool.
            let used = Set(try Int64.fetchAll(db, sql: "SELECT address FROM leases"))
            // Slot 0 would give the host side the pool's network address; tools that
            // still think in classful terms choke on it, so the first pair is slot 1.
            let slots = pool.size / 2
            var slot: UInt64 = 1
            while slot < slots && used.contains(Int64(UInt64(pool.base.value) + 2 * slot + 1)) { slot += 1 }
            guard slot < slots else {
                throw JailError(.state, "jail \(jail): no free address left in the pool \(pool) (\(slots - 1) jails)")
            }
            let address = IPv4Address(UInt32(UInt64(pool.base.value) + 2 * slot + 1))
            try save(db, jail: jail, address: address, replacing: existing != nil)
            return Lease(jail: jail, jailAddress: address)
        case .fixed(let address):
            if let existing, existing == Int64(address.value) { return Lease(jail: jail, jailAddress: address) }
            guard pool.contains(address) else {
                throw JailError(.invalidSpec, "jail \(jail): address \(address) is outside the pool \(pool)")
            }
            guard address.value & 1 == 1, address.value - 1 != pool.base.value else {
                let hint = address.value & 1 == 0 ? "\(IPv4Address(address.value + 1))" : "\(IPv4Address(address.value + 2))"
                throw JailError(.invalidSpec, "jail \(jail): address \(address) is a host-side address of the pool \(pool); jails get odd addresses (RFC 3021 /31 pairs), e.g. \(hint)")
            }
            if let holder = try String.fetchOne(db, sql: "SELECT jail FROM leases WHERE address = ?", arguments: [Int64(address.value)]) {
                throw JailError(.invalidSpec, "jail \(jail): address \(address) is already leased to jail \(holder)")
            }
            try save(db, jail: jail, address: address, replacing: existing != nil)
            return Lease(jail: jail, jailAddress: address)
        }
    }

    private func save(_ db: Database, jail: String, address: IPv4Address, replacing: Bool) throws {
        if replacing { try db.execute(sql: "DELETE FROM leases WHERE jail = ?", arguments: [jail]) }
        try db.execute(sql: "INSERT INTO leases (jail, address, leasedAt) VALUES (?, ?, ?)",
                       arguments: [jail, Int64(address.value), wallClock()])
    }

    /// The lease of a jail, if any; never makes one.
    public func existing(jail: String) throws -> Lease? {
        try store.db.read { db in
            try Int64.fetchOne(db, sql: "SELECT address FROM leases WHERE jail = ?", arguments: [jail])
                .map { Lease(jail: jail, jailAddress: IPv4Address(UInt32($0))) }
        }
    }

    public func leases() throws -> [Lease] {
        try store.db.read { db in
            try Row.fetchAll(db, sql: "SELECT jail, address FROM leases ORDER BY address").compactMap { row in
                guard let jail = row["jail"] as String?, let a = row["address"] as Int64? else { return nil }
                return Lease(jail: jail, jailAddress: IPv4Address(UInt32(a)))
            }
        }
    }

    /// Frees the jail's address; releasing twice is fine.
    public func release(jail: String) throws {
        try store.db.write { try $0.execute(sql: "DELETE FROM leases WHERE jail = ?", arguments: [jail]) }
    }
}

/// The IPv6 side of a jail's link: a /127 (RFC 6164) per jail from `pool6`, the host side
/// the even address, the jail the odd one above it, as with the IPv4 /31.
public struct Lease6: Sendable, Equatable, Hashable {
    public var jail: String
    public var jailAddress: IPv6Address
    public var hostAddress: IPv6Address { IPv6Address(high: jailAddress.high, low: jailAddress.low &- 1) }
    public static let prefix = 127

    public init(jail: String, jailAddress: IPv6Address) {
        self.jail = jail
        self.jailAddress = jailAddress
    }
}

/// IPv6 leases in the state database (table `leases6`), kept and freed like IPv4 ones.
/// Pools are /64 or longer, so every address of a pool shares its high 64 bits and a
/// slot is (low - base.low) / 2.
public struct IPAM6: Sendable {
    public let store: StateStore
    public let pool: IPv6Network

    public init(store: StateStore, pool: IPv6Network) {
        self.store = store
        self.pool = pool
    }

    var slots: UInt64 { pool.prefix >= 65 ? UInt64(1) << UInt64(127 - pool.prefix) : UInt64(1) << 63 }

    /// The jail's lease, made on first use; a fixed address must be an odd (jail-side)
    /// address of the pool and free, the error naming its holder.
    public func lease(jail: String, requested: NetworkSpec.Address6 = .auto) throws -> Lease6 {
        try store.db.write { db in try lease(in: db, jail: jail, requested: requested) }
    }

    /// As `lease`, inside the caller's write transaction.
    func lease(in db: Database, jail: String, requested: NetworkSpec.Address6) throws -> Lease6 {
        let existing = try String.fetchOne(db, sql: "SELECT address FROM leases6 WHERE jail = ?", arguments: [jail]).flatMap(IPv6Address.init)
        switch requested {
        case .none:
            throw JailError(.invalidSpec, "jail \(jail): address6 is \"none\"; it gets no IPv6 lease")
        case .auto:
            if let existing, pool.contains(existing) { return Lease6(jail: jail, jailAddress: existing) }
            // A lease from an older pool6 is replaced by one of the current pool.
            let used = Set(try String.fetchAll(db, sql: "SELECT address FROM leases6").compactMap(IPv6Address.init)
                .filter(pool.contains).map { ($0.low &- pool.base.low) / 2 })
            // Slot 0 would give the host side the pool's base (subnet-router anycast).
            var slot: UInt64 = 1
            while slot < slots && used.contains(slot) { slot += 1 }
            guard slot < slots else {
                throw JailError(.state, "jail \(jail): no free address left in the pool6 \(pool) (\(slots - 1) jails)")
            }
            let address = pool.base.adding(2 * slot + 1)
            try save(db, jail: jail, address: address, replacing: existing != nil)
            return Lease6(jail: jail, jailAddress: address)
        case .fixed(let address):
            if existing == address { return Lease6(jail: jail, jailAddress: address) }
            guard pool.contains(address) else {
                throw JailError(.invalidSpec, "jail \(jail): address6 \(address) is outside the pool6 \(pool)")
            }
            guard address.low & 1 == 1, address.low &- 1 != pool.base.low else {
                let hint = address.low & 1 == 0 ? address.adding(1) : address.adding(2)
                throw JailError(.invalidSpec, "jail \(jail): address6 \(address) is a host-side address of the pool6 \(pool); jails get odd addresses (/127 pairs), e.g. \(hint)")
            }
            if let holder = try String.fetchOne(db, sql: "SELECT jail FROM leases6 WHERE address = ?", arguments: ["\(address)"]) {
                throw JailError(.invalidSpec, "jail \(jail): address6 \(address) is already leased to jail \(holder)")
            }
            try save(db, jail: jail, address: address, replacing: existing != nil)
            return Lease6(jail: jail, jailAddress: address)
        }
    }

    private func save(_ db: Database, jail: String, address: IPv6Address, replacing: Bool) throws {
        if replacing { try db.execute(sql: "DELETE FROM leases6 WHERE jail = ?", arguments: [jail]) }
        try db.execute(sql: "INSERT INTO leases6 (jail, address, leasedAt) VALUES (?, ?, ?)",
                       arguments: [jail, "\(address)", wallClock()])
    }

    /// The lease of a jail, if any; never makes one. Needs no pool: `down --purge` and
    /// /etc/hosts read it whatever jailctl.toml says now.
    public static func existing(jail: String, store: StateStore) throws -> Lease6? {
        try store.db.read { db in
            try String.fetchOne(db, sql: "SELECT address FROM leases6 WHERE jail = ?", arguments: [jail])
                .flatMap(IPv6Address.init).map { Lease6(jail: jail, jailAddress: $0) }
        }
    }

    /// Frees the jail's IPv6 address; releasing twice is fine.
    public static func release(jail: String, store: StateStore) throws {
        try store.db.write { try $0.execute(sql: "DELETE FROM leases6 WHERE jail = ?", arguments: [jail]) }
    }
}
