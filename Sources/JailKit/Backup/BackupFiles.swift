/// The files jailctl writes into a backup jail's read-only config (`/etc/backup`), each
/// a pure function of its inputs so that they are golden-free to test and printable.
public enum BackupFiles {
    /// Ids inside the jail. `backup` is Debian's; `sshd` is the privilege separation user.
    public static let backupUID: UInt32 = 34
    public static let sshdUID: UInt32 = 101
    public static let nogroup: UInt32 = 65534
    public static let gatePath = BackupSpec.configTarget + "/gate"
    public static let hostKey = BackupSpec.configTarget + "/ssh_host_ed25519_key"
    public static let authorizedKeys = BackupSpec.configTarget + "/authorized_keys"

    /// sshd's whole configuration: public keys of one user only, every kind of
    /// forwarding, tty, environment and subsystem off. No `Subsystem` line: no sftp.
    /// StrictModes is off because the image's directories are owned by a uid outside the
    /// jail's range (they look like nobody's inside); the keys file lives on a read-only
    /// mount owned by the jail's root, which is what StrictModes would have checked.
    public static func sshdConfig(port: Int = 22) -> String {
        """
        # Written by jailctl for a backup jail; regenerated on every `up` and host change.
        Port \(port)
        ListenAddress 0.0.0.0
        HostKey \(hostKey)
        PidFile none
        UsePAM no
        AllowUsers backup
        PermitRootLogin no
        AuthenticationMethods publickey
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        HostbasedAuthentication no
        GSSAPIAuthentication no
        AuthorizedKeysFile \(authorizedKeys)
        AuthorizedKeysCommand none
        AuthorizedPrincipalsFile none
        StrictModes no
        PermitTTY no
        DisableForwarding yes
        AllowTcpForwarding no
        AllowStreamLocalForwarding no
        AllowAgentForwarding no
        X11Forwarding no
        PermitTunnel no
        GatewayPorts no
        PermitOpen none
        PermitListen none
        PermitUserEnvironment no
        PermitUserRC no
        PrintMotd no
        PrintLastLog no
        UseDNS no
        MaxAuthTries 3
        MaxSessions 1
        MaxStartups 10:30:60
        LoginGraceTime 30
        ClientAliveInterval 60
        ClientAliveCountMax 3
        LogLevel VERBOSE

        """
    }

    /// The jail's /etc/passwd: the backup user's login shell is the gate, so whatever
    /// sshd would run goes through it (sshd runs `shell -c COMMAND`).
    public static func passwd() -> String {
        """
        root:x:0:0:root:/root:/usr/sbin/nologin
        sshd:x:\(sshdUID):\(nogroup)::/run/sshd:/usr/sbin/nologin
        backup:x:\(backupUID):\(backupUID):backup:\(BackupSpec.dataTarget):\(gatePath)
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

        """
    }

    public static func group() -> String {
        "root:x:0:\nbackup:x:\(backupUID):\nnogroup:x:65534:\n"
    }

    /// One line per host: the key may only run the gate for that host's name, with
    /// `restrict` (no pty, no forwarding of any kind, no ~/.ssh/rc).
    public static func authorizedKeys(_ hosts: [BackupHost]) -> String {
        var out = "# Written by jailctl (jailctl backup add-host/remove-host); do not edit.\n"
        for h in hosts.sorted(by: { $0.name < $1.name }) {
            out += "restrict,command=\"host \(h.name)\" \(h.key.type) \(h.key.base64) jailctl-backup:\(h.name)\n"
        }
        return out
    }
}

/// A public key as `add-host` accepts it: one line, "TYPE BASE64 [comment]", no options.
public struct PublicKey: Sendable, Equatable, Codable {
    public var type: String
    public var base64: String

    public static let types: Set<String> = [
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// Parses the text of a .pub file. Errors say what was wrong, for the CLI.
    public static func parse(_ text: String) throws -> PublicKey {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: " \t\r") }.filter {
            !$0.isEmpty && !$0.hasPrefix("#")
        }
        guard lines.count == 1, let line = lines.first else {
            throw JailError(.invalidSpec, "a public key file holds exactly one key line (found \(lines.count))")
        }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2 else { throw JailError(.invalidSpec, "not a public key line: TYPE BASE64 [COMMENT]") }
        let type = String(fields[0])
        guard types.contains(type) else {
            throw JailError(.invalidSpec, "\"\(type.prefix(40))\" is not a key type accepted here (options before the key are not accepted either); accepted: \(types.sorted().joined(separator: ", "))")
        }
        let b64 = String(fields[1])
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
        guard b64.count >= 16, b64.count <= 4096, b64.allSatisfy({ alphabet.contains($0) }) else {
            throw JailError(.invalidSpec, "the key's base64 part is not valid")
        }
        return PublicKey(type: type, base64: b64)
    }

    public var line: String { "\(type) \(base64)" }
}

/// A host allowed to push: its name (its directory) and its key.
public struct BackupHost: Sendable, Equatable, Codable {
    public var name: String
    public var key: PublicKey
    public var fingerprint: String
    public var addedAt: Double
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
