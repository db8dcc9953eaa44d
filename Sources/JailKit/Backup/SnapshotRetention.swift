/// Which snapshots to keep: the newest one of each of the last `daily` days, `weekly`
/// ISO weeks and `monthly` months that have one (as restic's and rsnapshot's policies
/// do), and always the newest of all. Snapshot names are UTC stamps
/// `YYYY-MM-DDTHHMM[-N]`, so their order is their age.
public struct SnapshotRetention: Sendable, Equatable {
    public var daily: Int
    public var weekly: Int
    public var monthly: Int

    public init(daily: Int, weekly: Int, monthly: Int) {
        self.daily = daily
        self.weekly = weekly
        self.monthly = monthly
    }

    /// The names to delete. Names that are not stamps are never deleted.
    public func prune(_ names: [String]) -> [String] {
        let stamps = names.compactMap { n in SnapshotStamp(n).map { (n, $0) } }.sorted { $0.0 > $1.0 }
        var keep: Set<String> = []
        if let newest = stamps.first { keep.insert(newest.0) }
        func bucketed(_ count: Int, _ key: (SnapshotStamp) -> String) {
            var seen: Set<String> = []
            for (name, s) in stamps where seen.count < count {
                let k = key(s)
                if seen.insert(k).inserted { keep.insert(name) }
            }
        }
        bucketed(daily) { "\($0.year)-\($0.month)-\($0.day)" }
        bucketed(weekly) { $0.isoWeek }
        bucketed(monthly) { "\($0.year)-\($0.month)" }
        return stamps.map(\.0).filter { !keep.contains($0) }.sorted()
    }
}

/// A snapshot name's date.
public struct SnapshotStamp: Sendable, Equatable {
    public var year: Int, month: Int, day: Int, hour: Int, minute: Int

    public init?(_ name: String) {
        let b = Array(name.utf8)
        guard b.count >= 15, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T") else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var n = 0
            for i in r {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                n = n * 10 + Int(b[i] - 48)
            }
            return n
        }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13), let mi = num(13..<15),
            (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60
        else { return nil }
        if b.count > 15 {
            // "-N" for a second snapshot within one minute.
            guard b[15] == UInt8(ascii: "-"), b.count > 16, b[16...].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        }
        (year, month, day, hour, minute) = (y, mo, d, h, mi)
    }

    /// Days since 1970-01-01 (proleptic Gregorian).
    var days: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// ISO 8601 week, "YYYY-Www" (weeks start on Monday; week 1 holds the first Thursday).
    var isoWeek: String {
        let weekday = ((days % 7) + 7 + 3) % 7  // 0 = Monday (1970-01-01 was a Thursday)
        let thursday = days - weekday + 3
        // The ISO year is the year of that Thursday; week = its day of year / 7 + 1.
        let (ty, tdoy) = Self.yearAndDayOfYear(thursday)
        return "\(ty)-W\(tdoy / 7 + 1)"
    }

    static func yearAndDayOfYear(_ days: Int) -> (Int, Int) {
        var y = 1970 + days / 366
        while Self.jan1(y + 1) <= days { y += 1 }
        while Self.jan1(y) > days { y -= 1 }
        return (y, days - Self.jan1(y))
    }

    static func jan1(_ y: Int) -> Int {
        guard let s = SnapshotStamp(String(format4(y)) + "-01-01T0000") else { return 0 }
        return s.days
    }

    /// The name for a snapshot taken at `time` (seconds since the epoch, UTC).
    public static func name(at time: Double) -> String {
        let secs = Int(time)
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = secs - days * 86400
        let (y, doy) = yearAndDayOfYear(days)
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        var m = 0, d = doy
        while d >= lengths[m] {
            d -= lengths[m]
            m += 1
        }
        return "\(format4(y))-\(two(m + 1))-\(two(d + 1))T\(two(rem / 3600))\(two(rem / 60 % 60))"
    }
}

private func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
private func format4(_ n: Int) -> String { String(repeating: "0", count: max(0, 4 - String(n).count)) + String(n) }
