import Testing

@testable import JailKit

@Suite struct LogQueryTests {
    @Test func sinceAcceptsDurationsAndUTCTimes() {
        let now = 1_764_480_000.25  // 2025-11-30T05:20:00.250Z
        #expect(LogQuery.stamp(now) == "2025-11-30T05:20:00.250Z")
        #expect(LogQuery.sinceStamp("10m", now: now) == "2025-11-30T05:10:00.250Z")
        #expect(LogQuery.sinceStamp("1d", now: now) == "2025-11-29T05:20:00.250Z")
        #expect(LogQuery.sinceStamp("2025-11-30T04:20", now: now) == "2025-11-30T04:20:00.000Z")
        #expect(LogQuery.sinceStamp("2025-11-30 04:20:05Z", now: now) == "2025-11-30T04:20:05.000Z")
        for bad in ["", "yesterday", "10x", "2025-13-01T00:00", "2025-11-30", "2025-11-30T25:00", "-5m"] {
            #expect(LogQuery.sinceStamp(bad, now: now) == nil, "\(bad)")
        }
    }

    @Test func linesSinceAStamp() {
        let log = """
            2025-11-30T05:00:00.000Z old
            2025-11-30T05:10:00.000Z new
            a continuation line
            2025-11-30T05:20:00.000Z newest
            """
        #expect(LogQuery.lines(log, since: "2025-11-30T05:10:00.000Z") == ["2025-11-30T05:10:00.000Z new", "a continuation line", "2025-11-30T05:20:00.000Z newest"])
        #expect(LogQuery.lines(log, since: "2025-11-30T06:00:00.000Z").isEmpty)
    }
}
