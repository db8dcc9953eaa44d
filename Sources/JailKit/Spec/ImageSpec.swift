/// What goes into an image: ELF programs (their libraries are found later), plain files
/// and globs copied as they are, and empty directories.
public struct ImageSpec: Sendable, Equatable, Hashable {
    /// The file name without `.toml`.
    public var name: String
    /// The spec file it came from, for later diagnostics.
    public var file: String
    /// Absolute host paths of ELF programs.
    public var binaries: [String]
    /// Absolute host paths or glob patterns.
    public var files: [String]
    /// Absolute, normalised paths created empty in the image.
    public var directories: [String]
    public var description: String?

    public init(
        name: String, file: String, binaries: [String] = [], files: [String] = [],
        directories: [String] = [], description: String? = nil
    ) {
        self.name = name
        self.file = file
        self.binaries = binaries
        self.files = files
        self.directories = directories
        self.description = description
    }
}
