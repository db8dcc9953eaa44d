/// What the supervisor does when a jail ends, and in what order jails start.
public struct SupervisionSpec: Sendable, Equatable, Hashable {
    public enum Restart: String, Sendable, Hashable { case always, onFailure = "on-failure", no }
    public var restart: Restart = .onFailure
    /// Backoff between restarts: starts at `restartDelay`, doubles per consecutive
    /// failure, never above `restartMaxDelay`, with ±10% jitter.
    public var restartDelay: Double = 1
    public var restartMaxDelay: Double = 60
    /// A run at least this long counts as healthy: the backoff starts over.
    public var restartReset: Double = 30
    /// `restartLimit` restarts within `restartWindow` seconds: crash loop, no more restarts.
    public var restartLimit: Int = 5
    public var restartWindow: Double = 300
    /// The jail's log rotates at this size; this many old files are kept.
    public var logMaxBytes: UInt64 = 10 << 20
    public var logKeep: Int = 5
    /// Jails that start before this one (and stop after it).
    public var after: [String] = []
    public init() {}
}
