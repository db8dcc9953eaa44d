/// Everything a spec directory defines that passed validation, by name.
public struct SpecSet: Sendable, Equatable {
    public var images: [String: ImageSpec]
    public var jails: [String: JailSpec]
    /// `jailctl.toml`, or the defaults when there is none.
    public var host: HostSettings

    public init(images: [String: ImageSpec] = [:], jails: [String: JailSpec] = [:], host: HostSettings = HostSettings()) {
        self.images = images
        self.jails = jails
        self.host = host
    }
}
