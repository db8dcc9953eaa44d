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
    /// `[health]`: nil, no checks.
    public var health: HealthSpec?
    public init() {}
}

/// `[health]`: how the supervisor tells a running jail is well. A check that fails
/// `retries` times in a row (after `startPeriod`) makes the jail unhealthy: an alert, and
/// a restart when its policy restarts failed jails.
public struct HealthSpec: Sendable, Equatable, Hashable {
    public enum Check: Sendable, Equatable, Hashable {
        /// argv run inside the jail, with its ids and limits; exit status 0 is healthy.
        case exec([String])
        /// A TCP connection is accepted.
        case tcp(port: UInt16)
        /// `GET path` answers 2xx or 3xx.
        case http(path: String)
        /// A FastCGI GET of path completes with a 2xx/3xx or no Status (php-fpm's ping).
        case fcgi(path: String)
    }

    /// Where http and fcgi connect: a port of the jail, or a Unix socket inside it.
    public enum Endpoint: Sendable, Equatable, Hashable {
        case port(UInt16)
        case socket(String)
    }

    public var check: Check
    public var endpoint: Endpoint?
    public var interval: Double = 10
    public var timeout: Double = 2
    public var retries: Int = 3
    public var startPeriod: Double = 0

    public init(check: Check, endpoint: Endpoint? = nil) {
        self.check = check
        self.endpoint = endpoint
    }
}
