/// The `[tenant]` table of a jail (in practice of a template such as `php-tenant@.toml`):
/// which of the jail's volumes is the web root, where its FastCGI socket is, and the
/// php-fpm pool jailctl generates for it. Paths are inside the jail; each must be the
/// target of one of the jail's volumes (checked), so the host side is always known.
public struct TenantSpec: Sendable, Equatable, Hashable {
    /// Target of the web root volume: the DOCUMENT_ROOT the tenant's PHP sees.
    public var webroot: String
    /// The FastCGI Unix socket inside the jail; its directory is a volume target.
    public var socket: String
    /// Where php-fpm reads the generated configuration: a read-only file volume whose
    /// host source jailctl writes.
    public var phpConfig: String
    public var php = PHPPoolSpec()

    public init(webroot: String, socket: String, phpConfig: String) {
        self.webroot = webroot
        self.socket = socket
        self.phpConfig = phpConfig
    }

    public var socketDirectory: String {
        String(socket[..<(socket.lastIndex(of: "/") ?? socket.startIndex)])
    }
}

/// `[tenant.php]`: the php-fpm pool of a tenant.
public struct PHPPoolSpec: Sendable, Equatable, Hashable {
    public enum ProcessManager: String, Sendable, Hashable, CaseIterable { case ondemand, dynamic, `static` }
    public var pm: ProcessManager = .ondemand
    public var maxChildren = 5
    /// PHP's memory_limit per request (bytes).
    public var memoryLimit: UInt64 = 128 << 20
    public var disableFunctions: [String] = []
    /// Seconds; 0: off. A slow log needs ptrace of the workers (allow it in [seccomp]).
    public var slowlogTimeout = 0
    /// Seconds after which a request is killed; 0: never.
    public var requestTimeout = 60
    /// The pool's ping page (health checks).
    public var pingPath = "/ping"
    /// Extra open_basedir entries besides the web root, the session directory and /tmp.
    public var openBasedir: [String] = []
    public var sessionDirectory = "/var/lib/php/sessions"
    public init() {}
}

/// Sizes as spec files write them ("256M"), for command-line options.
public enum SizeText {
    public static func parse(_ text: String) -> UInt64? { IsolationSchema.parseSize(text) }
}
