#if canImport(Glibc)
import Glibc
#endif

/// Reading a jail's log back: its rotated files in order, and `--since`. Every line the
/// monitor writes starts with a fixed-width UTC stamp ("2026-11-30T04:20:00.123Z "), so
/// times compare as strings and no line needs parsing.
public enum LogQuery {
    /// The jail's log files, oldest first (rotated `.N` with the highest N first).
    public static func files(_ root: StateRoot, jail: String) -> [String] {
        let current = root.jailLog(jail)
        var rotated: [String] = []
        var n = 1
        while FS.exists("\(current).\(n)") {
            rotated.append("\(current).\(n)")
            n += 1
        }
        return rotated.reversed() + [current]
    }

    /// The text of the rotated files, oldest first (the current file is the caller's).
    public static func rotatedText(_ root: StateRoot, jail: String) -> String {
        files(root, jail: jail).dropLast().map { (try? FS.readText($0)) ?? "" }.joined()
    }

    /// `--since`: "30s", "10m", "2h", "1d" ago, or a UTC time "2026-11-30T04:20[:00]"
    /// (a space for the T, and a trailing Z, are fine). The stamp to compare lines with,
    /// or nil when the text is neither.
    public static func sinceStamp(_ text: String, now: Double) -> String? {
        if let unit = text.last, let n = Double(text.dropLast()), n >= 0, n.isFinite {
            let scale: Double? = switch unit {
            case "s": 1
            case "m": 60
            case "h": 3600
            case "d": 86400
            default: nil
            }
            if let scale { return stamp(now - n * scale) }
        }
        var t = text.replacingOccurrences(of: " ", with: "T")
        if t.hasSuffix("Z") { t.removeLast() }
        let parts = t.split(separator: "T", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let date = parts[0].split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        let time = parts[1].split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard date.count == 3, (2...3).contains(time.count), let y = date[0], let mo = date[1], let d = date[2],
              let h = time[0], let mi = time[1], (1...12).contains(mo), (1...31).contains(d), (0...23).contains(h),
              (0...59).contains(mi), parts[0].count == 10 else { return nil }
        let s = time.count == 3 ? time[2] : 0
        guard let s, (0...60).contains(s) else { return nil }
        return pad(y, 4) + "-" + pad(mo, 2) + "-" + pad(d, 2) + "T" + pad(h, 2) + ":" + pad(mi, 2) + ":" + pad(s, 2) + ".000Z"
    }

    /// The monitor's stamp for a wall-clock time.
    public static func stamp(_ time: Double) -> String {
        var t = time_t(time.rounded(.down))
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        let ms = Int((time - Double(t)) * 1000)
        return pad(Int(tm.tm_year) + 1900, 4) + "-" + pad(Int(tm.tm_mon) + 1, 2) + "-" + pad(Int(tm.tm_mday), 2) + "T"
            + pad(Int(tm.tm_hour), 2) + ":" + pad(Int(tm.tm_min), 2) + ":" + pad(Int(tm.tm_sec), 2) + "." + pad(ms, 3) + "Z"
    }

    /// Lines stamped at or after `since` (a line without a stamp goes with the one before).
    public static func lines(_ text: String, since: String) -> [Substring] {
        var keep = false
        return text.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            if line.count >= 24, line.dropFirst(4).first == "-", line.dropFirst(23).first == "Z" {
                keep = line.prefix(24) >= since
            }
            return keep
        }
    }

    static func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
