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
    /// Debian packages installed on the host, copied as dpkg lists them (runtime parts).
    public var packages: [String]
    /// Groups of package files left out by default that the image wants ("doc", "man", "locale").
    public var packageExtras: [String]
    /// Libraries loaded at run time (paths or globs), each with its closure.
    public var dlopen: [String]
    /// gconv modules and the C.UTF-8 locale.
    public var localeSupport: Bool
    /// /etc/ssl/certs and OpenSSL's default paths.
    public var caCertificates: Bool

    public init(
        name: String, file: String, binaries: [String] = [], files: [String] = [],
        directories: [String] = [], description: String? = nil, packages: [String] = [],
        packageExtras: [String] = [], dlopen: [String] = [], localeSupport: Bool = false,
        caCertificates: Bool = false
    ) {
        self.packages = packages
        self.packageExtras = packageExtras
        self.dlopen = dlopen
        self.localeSupport = localeSupport
        self.caCertificates = caCertificates
        self.name = name
        self.file = file
        self.binaries = binaries
        self.files = files
        self.directories = directories
        self.description = description
    }
}
