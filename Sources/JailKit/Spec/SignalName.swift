/// Linux signal names and numbers (x86_64/arm64 numbering, which is what jails run on).
enum SignalName {
    static let numbers: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
        "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
        "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
        "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
        "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31, "RTMIN": 34, "RTMAX": 64,
    ]

    static let validRange: ClosedRange<Int> = 1...64

    /// "SIGTERM", "TERM" (any case) → 15.
    static func number(for name: String) -> Int32? {
        var key = name.uppercased()
        if key.hasPrefix("SIG") { key.removeFirst(3) }
        return numbers[key]
    }
}
