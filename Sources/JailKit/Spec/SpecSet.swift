/// Everything a spec directory defines that passed validation, by name.
public struct SpecSet: Sendable, Equatable {
    public var images: [String: ImageSpec]
    public var jails: [String: JailSpec]
    /// Templates by base name (`php-tenant` for `Jails/php-tenant@.toml`).
    public var templates: [String: JailTemplate]
    /// `jailctl.toml`, or the defaults when there is none.
    public var host: HostSettings

    public init(images: [String: ImageSpec] = [:], jails: [String: JailSpec] = [:], templates: [String: JailTemplate] = [:],
                host: HostSettings = HostSettings()) {
        self.images = images
        self.jails = jails
        self.templates = templates
        self.host = host
    }
}
