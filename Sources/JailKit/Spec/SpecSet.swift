/// Everything a spec directory defines that passed validation, by name.
public struct SpecSet: Sendable, Equatable {
    public var images: [String: ImageSpec]
    public var jails: [String: JailSpec]

    public init(images: [String: ImageSpec] = [:], jails: [String: JailSpec] = [:]) {
        self.images = images
        self.jails = jails
    }
}
