/// A validated jail: every field holds a usable value, defaults filled in.
public struct JailSpec: Sendable, Equatable, Hashable {
    /// The file name without `.toml`.
    public var name: String
    public var file: String
    /// Name of the image (checked to exist by `SpecLoader.load`).
    public var image: String
    /// argv; never empty, argv[0] is absolute.
    public var command: [String]
    public var user: IDRef
    public var group: IDRef?
    public var hostname: String
    /// Absolute, normalised.
    public var workdir: String
    public var env: [String: String]
    public var volumes: [VolumeSpec]
    public var stopSignal: Int32
    /// Seconds, > 0.
    public var stopTimeout: Double
    public var description: String?
    public var isolation = IsolationSpec()
    public var supervision = SupervisionSpec()
    public var network = NetworkSpec()
    /// Web root, FastCGI socket and php-fpm pool of a hosting tenant (`[tenant]`).
    public var tenant: TenantSpec?
    /// An rsync-only backup server (`[backup]`); its volumes are part of `volumes`.
    public var backup: BackupSpec?
    /// Users only this jail has (`[[users]]`), in a passwd and group of its own.
    public var users: [JailUserSpec] = []

    public static let defaultUser = IDRef.name("root")
    public static let defaultWorkdir = "/"
    public static let defaultStopSignal: Int32 = 15  // SIGTERM
    public static let defaultStopTimeout: Double = 10

    public init(
        name: String, file: String, image: String, command: [String],
        user: IDRef = JailSpec.defaultUser, group: IDRef? = nil, hostname: String,
        workdir: String = JailSpec.defaultWorkdir, env: [String: String] = [:],
        volumes: [VolumeSpec] = [], stopSignal: Int32 = JailSpec.defaultStopSignal,
        stopTimeout: Double = JailSpec.defaultStopTimeout, description: String? = nil
    ) {
        self.name = name
        self.file = file
        self.image = image
        self.command = command
        self.user = user
        self.group = group
        self.hostname = hostname
        self.workdir = workdir
        self.env = env
        self.volumes = volumes
        self.stopSignal = stopSignal
        self.stopTimeout = stopTimeout
        self.description = description
    }
}
