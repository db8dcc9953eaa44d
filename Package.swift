// swift-tools-version:6.1
import PackageDescription

// Warnings are errors in CI: scripts/test sets JAILCTL_STRICT=1. Only our own targets get
// the flag, so a dependency's warning under a newer compiler never breaks the build.
let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
    + (Context.environment["JAILCTL_STRICT"] == "1" ? [.unsafeFlags(["-warnings-as-errors"])] : [])

let package = Package(
    name: "jailctl",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "jailctl", targets: ["jailctl"]),
        .library(name: "JailKit", targets: ["JailKit"]),
        .executable(name: "jailctl-sendmail", targets: ["jailctl-sendmail"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        // System libraries (Debian -dev packages). libsqlite3 comes through GRDB's own
        // systemLibrary target (GRDBSQLite), so it is not declared a second time here.
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        // The only C of the project: clone -> mounts -> pivot_root -> ids -> exec.
        // sqlite3_db_config (variadic, not callable from Swift) for the state database.
        .target(name: "CSQLiteTuning", cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wextra", "-Werror"])]),
        .target(name: "CJailLaunch", cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wextra", "-Werror"])]),
        // The backup gate's argument check (pure C, unit-tested from Swift) and the static
        // gate executable that jailctl copies into a backup jail's read-only config.
        .target(name: "CBackupGate", cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wextra", "-Werror"])]),
        .executableTarget(
            name: "jailctl-backup-gate", dependencies: ["CBackupGate"],
            cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wextra", "-Werror"])],
            linkerSettings: [.unsafeFlags(["-static-executable", "-Xlinker", "--gc-sections", "-Xlinker", "--strip-all"])]),
        .target(
            name: "JailKit",
            dependencies: [
                "CJailLaunch", "CSQLiteTuning", "CSeccomp", "CCap",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "jailctl",
            dependencies: [
                "JailKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The sendmail of tenant jails (PHP's mail()): spools to a per-tenant directory.
        // It runs inside jails, whose images hold no Swift runtime: linked as-needed, it
        // depends on libc only.
        .executableTarget(name: "jailctl-sendmail", cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wextra", "-Werror"])],
                          linkerSettings: [.unsafeFlags(["-static-executable", "-Xlinker", "--gc-sections", "-Xlinker", "-s"])]),
        // Benchmarks driven in-process (scripts/bench); not part of the product.
        .executableTarget(name: "jailctl-bench", dependencies: ["JailKit"], swiftSettings: strict),
        // Golden files are read by path (#filePath), not bundled.
        .testTarget(name: "JailKitTests", dependencies: ["JailKit", "CBackupGate"], exclude: ["Golden"], swiftSettings: strict),
        .testTarget(name: "IntegrationTests", dependencies: ["JailKit"], swiftSettings: strict),
    ]
)
