extension SeccompCompiler {
    /// The profile as text for `jailctl inspect --seccomp`: the policy first, then the
    /// denials with their reasons, then the conditional rules, then the plain allows.
    public static func render(_ p: SeccompProfile) -> String {
        var out: [String] = []
        out.append("seccomp profile \(p.name)")
        out.append("default \(p.defaultAction)")
        out.append("architectures \(p.architectures.map(\.rawValue).joined(separator: " ")); other ABIs (i386 int 0x80, x32): \(p.badArchAction)")
        if let n = p.newerSyscalls {
            out.append("newer system calls #\(n.reviewedThrough + 1)...#\(n.upTo): \(n.action)")
        }
        if !p.deniedIoctls.isEmpty {
            out.append("before all rules: ioctl requests " + p.deniedIoctls.map { "0x" + String($0, radix: 16) }.joined(separator: ", ")
                       + " (TIOCSTI, TIOCLINUX: typing into a shared terminal): errno EPERM")
        }
        let plainAllows = p.rules.filter { $0.action == .allow && $0.conditions.isEmpty && $0.reason.isEmpty }
        let others = p.rules.filter { !($0.action == .allow && $0.conditions.isEmpty && $0.reason.isEmpty) }
        let width = (others.map(\.syscall.count).max() ?? 0) + 1
        func line(_ r: SeccompRule) -> String {
            var s = "  " + r.action.description.padded(14) + r.syscall.padded(width)
            if !r.conditions.isEmpty { s += "if " + r.conditions.map(\.description).joined(separator: " && ") + "  " }
            if case .notOnThisArchitecture = SeccompSyscalls.resolve(r.syscall) { s += "(not on this architecture) " }
            return (s + r.reason).trailingSpacesTrimmed
        }
        let unconditional = others.filter { $0.conditions.isEmpty }.sorted { ($0.action.description, $0.syscall) < ($1.action.description, $1.syscall) }
        let conditional = others.filter { !$0.conditions.isEmpty }
        if !unconditional.isEmpty {
            out.append("rules:")
            out += unconditional.map(line)
        }
        if !conditional.isEmpty {
            out.append("conditional (otherwise \(p.defaultAction)):")
            out += conditional.map(line)
        }
        if !plainAllows.isEmpty {
            out.append("allow (\(plainAllows.count)):")
            var row = " "
            for name in plainAllows.map(\.syscall).sorted() {
                if row.count + name.count + 1 > 96 {
                    out.append(row)
                    row = " "
                }
                row += " " + name
            }
            out.append(row)
        }
        return out.joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate func padded(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
    fileprivate var trailingSpacesTrimmed: String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
