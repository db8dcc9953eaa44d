/// glibc's gconv modules (iconv's character sets, dlopen'ed by name at run time) and,
/// with `locale_support`, the C.UTF-8 locale. Applied when the spec asks, or when the
/// image has a PHP program (its iconv and mbstring convert at run time).
public struct GconvRule: ImageRule {
    public let name = "gconv"
    public init() {}

    public func apply(to plan: inout ImagePlan, context: RuleContext) throws {
        let hasPHP = context.files(in: plan).contains { PHPIni.program(RuleContext.basename($0.path)) != nil }
        guard context.spec.localeSupport || hasPHP, let libdir = context.libcDirectory(in: plan) else { return }
        let dir = libdir + "/gconv"
        guard FS.isDirectory(dir) else { return }
        let why = context.spec.localeSupport ? "locale_support" : "a PHP program"
        plan.noteInput(dir)
        var modules: [String] = []
        for name in try FS.list(dir).sorted() {
            let p = dir + "/" + name
            if name.hasSuffix(".so") {
                modules.append(p)
            } else {
                try context.addPath(p, why, to: &plan)
            }
        }
        try context.addELF(modules, why, to: &plan)
        if context.spec.localeSupport {
            try context.addIfPresent("/usr/lib/locale/C.utf8", why, to: &plan)
            try context.addIfPresent("/usr/lib/locale/locale-archive", why, to: &plan)
        }
    }
}

/// /etc/localtime and the zoneinfo file it points to, so programs show the host's
/// time zone; /etc/timezone too where Debian keeps the name.
public struct TimezoneRule: ImageRule {
    public let name = "timezone"
    public init() {}

    public func apply(to plan: inout ImagePlan, context: RuleContext) throws {
        guard FS.exists("/etc/localtime") else { return }
        plan.noteInput("/etc/localtime")
        // A link to a zone that is not installed: the host falls back to UTC, so does the image.
        if (try? SymlinkChain.entries(for: "/etc/localtime")) != nil {
            try context.addPath("/etc/localtime", "host time zone", to: &plan)
        }
        try context.addIfPresent("/etc/timezone", "host time zone", to: &plan)
    }
}

/// `ca_certificates = true`: the trust store (/etc/ssl/certs with the certificates its
/// links lead to) and OpenSSL's default directory links.
public struct CACertificatesRule: ImageRule {
    public let name = "ca_certificates"
    public init() {}

    public func apply(to plan: inout ImagePlan, context: RuleContext) throws {
        guard context.spec.caCertificates else { return }
        guard FS.isDirectory("/etc/ssl/certs") else {
            throw JailError(.image, "ca_certificates: /etc/ssl/certs does not exist (apt install ca-certificates)")
        }
        plan.noteInput("/etc/ssl/certs")
        try context.addPath("/etc/ssl/certs", "trust store", to: &plan)
        for p in ["/usr/lib/ssl/certs", "/usr/lib/ssl/cert.pem", "/usr/lib/ssl/openssl.cnf", "/etc/ssl/openssl.cnf"] {
            try context.addIfPresent(p, "OpenSSL defaults", to: &plan)
        }
    }
}

/// Terminal descriptions for the common terminals, when the image has a shell, so
/// `exec -it` gets a usable line editor.
public struct TerminfoRule: ImageRule {
    public let name = "terminfo"
    public init() {}

    static let shells: Set<String> = ["sh", "bash", "dash", "zsh", "ash", "busybox", "mksh", "ksh", "fish"]
    static let terminals = ["x/xterm*", "l/linux", "d/dumb", "v/vt100", "s/screen*", "t/tmux*"]

    public func apply(to plan: inout ImagePlan, context: RuleContext) throws {
        let hasShell = plan.entries.contains { e in
            e.path.contains("bin/") && Self.shells.contains(RuleContext.basename(e.path))
        }
        guard hasShell else { return }
        for base in ["/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"] where FS.isDirectory(base) {
            for t in Self.terminals {
                for p in RuleContext.glob(base + "/" + t) { try context.addPath(p, "a shell", to: &plan) }
            }
        }
    }
}
