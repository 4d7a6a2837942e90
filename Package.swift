// swift-tools-version:6.1
import PackageDescription

/// Modules that must stay free of I/O: a CI check rejects Dispatch, Glibc and C imports in them.
let pure: [Target.Dependency] = ["GatewayCore"]

let package = Package(
    name: "myorg-gateway",
    products: [
        .executable(name: "myorg-gateway", targets: ["myorg-gateway"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // C libraries, reached through pkg-config.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CNghttp2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(name: "CSystemShims"),

        // Pure layers.
        .target(name: "GatewayCore"),
        .target(name: "HTTP1", dependencies: pure),
        .target(
            name: "Policy",
            dependencies: pure + [.product(name: "Yams", package: "Yams")]
        ),

        // C interop without sockets.
        .target(name: "TLS", dependencies: ["COpenSSL", "GatewayCore"]),
        .target(name: "Tokens", dependencies: ["COpenSSL", "GatewayCore"]),
        .target(name: "HTTP2", dependencies: ["CNghttp2", "GatewayCore"]),

        // I/O.
        .target(name: "EventLoop", dependencies: ["CSystemShims", "GatewayCore"]),
        .target(
            name: "Recording",
            dependencies: [
                "CSystemShims", "GatewayCore", "Policy",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "RateLimitStore",
            dependencies: [
                "CHiredis", "CSystemShims", "GatewayCore", "Policy", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "TenantEmulator", dependencies: ["GatewayCore", "HTTP1", "Tokens", "Policy"]),
        .target(
            name: "Proxy",
            dependencies: [
                "GatewayCore", "HTTP1", "HTTP2", "TLS", "Tokens", "Policy", "EventLoop", "Recording", "RateLimitStore",
                "TenantEmulator", "CSystemShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "myorg-gateway",
            dependencies: [
                "Proxy", "EventLoop", "Policy", "Tokens", "TLS", "Recording", "TenantEmulator", "GatewayCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Tests.
        .target(
            name: "TestSupport",
            dependencies: ["GatewayCore", "COpenSSL", "TLS", "Tokens"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "GatewayCoreTests", dependencies: ["GatewayCore"]),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1", "GatewayCore"]),
        .testTarget(name: "HTTP2Tests", dependencies: ["HTTP2", "CNghttp2", "GatewayCore"]),
        .testTarget(name: "TLSTests", dependencies: ["TLS", "COpenSSL", "TestSupport"]),
        .testTarget(name: "TokensTests", dependencies: ["Tokens", "COpenSSL", "TestSupport"]),
        // `swift run -c release TokensBenchmark`: RS256 and cache figures on one core, optimized.
        .executableTarget(
            name: "TokensBenchmark",
            dependencies: ["Tokens", "GatewayCore", "TestSupport"],
            path: "Tests/TokensBenchmark"
        ),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "GatewayCore", "TestSupport"]),
        .testTarget(name: "EventLoopTests", dependencies: ["EventLoop", "CSystemShims", "GatewayCore"]),
        .testTarget(
            name: "RecordingTests",
            dependencies: [
                "Recording", "Policy", "GatewayCore", "TestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "TenantEmulatorTests",
            dependencies: ["TenantEmulator", "Tokens", "GatewayCore", "TestSupport"]
        ),
        .testTarget(
            name: "ProxyTests",
            dependencies: ["Proxy", "EventLoop", "HTTP1", "TLS", "Tokens", "GatewayCore", "TestSupport"]),
        .testTarget(
            name: "RateLimitStoreTests",
            dependencies: [
                "RateLimitStore", "Policy", "GatewayCore", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "GatewayIntegrationTests", dependencies: ["TestSupport", "TLS"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)

// Exclusivity is enforced at run time in debug builds (every test run); release builds drop the per-access
// runtime check, which profiles showed at ~3% of a proxied request's instructions. Release builds also optimize
// across modules: without it, generic code of GatewayCore (the token caches' ClockTable) ran unspecialized from
// Tokens and Proxy, with metadata lookups on every insert (11k instructions per fresh token, 2.8k with it).
// In a module where one file imports Foundation, every file sees Foundation's extensions unless it says otherwise:
// `contains` on a String then meant NSString's range(of:) in files that never import Foundation (34,000
// instructions per logged request, 2.5 million per recorded exchange, found with callgrind). With this feature a
// file sees only the members of what it imports.
for target in package.targets where ["Proxy", "Recording"].contains(target.name) {
    target.swiftSettings = (target.swiftSettings ?? []) + [.enableUpcomingFeature("MemberImportVisibility")]
}

for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings =
        (target.swiftSettings ?? []) + [
            .unsafeFlags(
                ["-enforce-exclusivity=unchecked", "-cross-module-optimization"], .when(configuration: .release))
        ]
}
