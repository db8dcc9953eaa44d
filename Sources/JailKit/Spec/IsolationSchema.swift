/// The jail keys of isolation: `capabilities`, `userns`, `[seccomp]`, `[limits]`,
/// `[filesystem]`. Kept apart from JailSchema because they grow with every hardening.
enum IsolationSchema {
    static let fields: [SpecField<JailSchema.Draft>] = [
        SpecField("capabilities", valid: "an array of capability names, e.g. [\"NET_BIND_SERVICE\"]") {
            value, path, draft, context in
            guard let names = context.strings(value, at: path, valid: "an array of capability names") else { return }
            var kept: [String] = []
            for n in names {
                guard let number = Capabilities.number(of: n.text) else {
                    let hint = SpecRules.suggestion(for: n.text, among: Capabilities.names.map { $0.lowercased() })
                        .map { "did you mean \"\($0.uppercased())\"?" }
                    context.report(n.path, "\"\(n.text)\" is not a capability", valid: hint ?? "names from capabilities(7) without CAP_, e.g. NET_BIND_SERVICE")
                    continue
                }
                let name = Capabilities.name(of: number)
                if kept.contains(name) {
                    context.report(n.path, "duplicate capability \"\(n.text)\"", valid: "list each capability once")
                    continue
                }
                kept.append(name)
            }
            draft.isolation.capabilities = kept
        },
        SpecField("userns", valid: "true or false") { value, path, draft, context in
            if let flag = context.bool(value, at: path, valid: "true or false") { draft.isolation.userns = flag }
        },
        SpecField("seccomp", valid: "a table with profile = \"default\" | \"unconfined\", allow = [...], deny = [...]") {
            value, path, draft, context in
            guard let table = context.table(value, at: path, valid: "a table [seccomp]") else { return }
            context.decode(table, at: path, fields: seccompFields, into: &draft.isolation.seccomp, what: "[seccomp]")
        },
        SpecField("limits", valid: "a table [limits] with memory, memory_swap, pids, cpu, cpu_weight, nofile, nproc, fsize, tmpfs_size") {
            value, path, draft, context in
            guard let table = context.table(value, at: path, valid: "a table [limits]") else { return }
            context.decode(table, at: path, fields: limitFields, into: &draft.isolation.limits, what: "[limits]")
        },
        SpecField("filesystem", valid: "a table [filesystem] with readonly_root, tmp_exec, sys") {
            value, path, draft, context in
            guard let table = context.table(value, at: path, valid: "a table [filesystem]") else { return }
            context.decode(table, at: path, fields: filesystemFields, into: &draft.isolation.filesystem, what: "[filesystem]")
        },
    ]

    static let syscallValid = "system call names as in syscalls(2), e.g. \"ptrace\""

    static let seccompFields: [SpecField<SeccompSpec>] = [
        SpecField("profile", valid: "\"default\" or \"unconfined\"") { value, path, spec, context in
            guard let text = context.string(value, at: path, valid: "\"default\" or \"unconfined\"") else { return }
            guard let profile = SeccompSpec.Profile(rawValue: text) else {
                context.report(path, "\"\(text)\" is not a seccomp profile", valid: "\"default\" or \"unconfined\"")
                return
            }
            if profile == .unconfined {
                context.report(path, "the jail runs without a seccomp filter: every system call reaches the kernel",
                               valid: "remove the line, or allow single calls with allow = [...]", severity: .warning)
            }
            spec.profile = profile
        },
        SpecField("allow", valid: syscallValid) { value, path, spec, context in
            spec.allow = syscallNames(value, at: path, context: &context)
        },
        SpecField("deny", valid: syscallValid) { value, path, spec, context in
            spec.deny = syscallNames(value, at: path, context: &context)
            for (i, name) in spec.deny.enumerated() where name == "clone3" {
                // clone3 already answers ENOSYS so glibc falls back to clone; EPERM
                // would make glibc give up and break threads and posix_spawn.
                context.report(path.appending(index: i), "denying clone3 with EPERM breaks thread creation",
                               valid: "leave clone3 out: the default profile already refuses it with ENOSYS")
            }
        },
    ]

    static func syscallNames(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [String] {
        guard let names = context.strings(value, at: path, valid: syscallValid) else { return [] }
        var out: [String] = []
        for n in names {
            guard !n.text.isEmpty, n.text.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }) else {
                context.report(n.path, "\"\(n.text)\" is not a system call name", valid: syscallValid)
                continue
            }
            if SeccompSyscalls.resolve(n.text) == .unknown {
                let hint = SpecRules.suggestion(for: n.text, among: SeccompSyscalls.table().map(\.name))
                context.report(n.path, "unknown system call \"\(n.text)\"",
                               valid: hint.map { "did you mean \"\($0)\"?" } ?? syscallValid)
                continue
            }
            out.append(n.text)
        }
        return out
    }

    static let sizeValid = "a size like \"256M\", \"1G\", \"512K\" or a number of bytes"

    static let limitFields: [SpecField<LimitsSpec>] = [
        SpecField("memory", valid: sizeValid) { value, path, l, context in l.memory = size(value, at: path, context: &context) },
        SpecField("memory_swap", valid: sizeValid + "; 0 for no swap") { value, path, l, context in
            if case .string(let t) = value, t == "0" { l.memorySwap = 0 } else if case .integer(0) = value { l.memorySwap = 0 } else {
                l.memorySwap = size(value, at: path, context: &context)
            }
        },
        SpecField("pids", valid: "a number of processes, 1-4194304") { value, path, l, context in
            if let n = integer(value, at: path, range: 1...4_194_304, valid: "a number of processes, 1-4194304", context: &context) { l.pids = n }
        },
        SpecField("cpu", valid: "a number of CPUs greater than 0, e.g. 0.5 or 2") { value, path, l, context in
            let valid = "a number of CPUs greater than 0, e.g. 0.5 or 2"
            switch value {
            case .integer(let n) where n > 0: l.cpu = Double(n)
            case .float(let x) where x >= 0.01 && x.isFinite: l.cpu = x
            case .integer, .float: context.report(path, "the CPU limit must be at least 0.01", valid: valid)
            default: context.wrongType(value, at: path, expected: "a number", valid: valid)
            }
        },
        SpecField("cpu_weight", valid: "a weight 1-10000 (default 100)") { value, path, l, context in
            l.cpuWeight = integer(value, at: path, range: 1...10000, valid: "a weight 1-10000 (default 100)", context: &context)
        },
        SpecField("nofile", valid: "a number of open files, 16-1048576") { value, path, l, context in
            if let n = integer(value, at: path, range: 16...1_048_576, valid: "a number of open files, 16-1048576", context: &context) { l.nofile = UInt64(n) }
        },
        SpecField("nproc", valid: "a number of processes per user, 1-4194304") { value, path, l, context in
            l.nproc = integer(value, at: path, range: 1...4_194_304, valid: "a number of processes per user, 1-4194304", context: &context).map(UInt64.init)
        },
        SpecField("fsize", valid: sizeValid) { value, path, l, context in l.fsize = size(value, at: path, context: &context) },
        SpecField("tmpfs_size", valid: sizeValid) { value, path, l, context in
            if let s = size(value, at: path, context: &context) { l.tmpfsSize = s }
        },
    ]

    static let filesystemFields: [SpecField<FilesystemSpec>] = [
        SpecField("readonly_root", valid: "true or false") { value, path, f, context in
            if let b = context.bool(value, at: path, valid: "true or false") { f.readonlyRoot = b }
        },
        SpecField("tmp_exec", valid: "true or false") { value, path, f, context in
            if let b = context.bool(value, at: path, valid: "true or false") { f.tmpExec = b }
        },
        SpecField("sys", valid: "true or false") { value, path, f, context in
            if let b = context.bool(value, at: path, valid: "true or false") { f.sys = b }
        },
    ]

    static func integer(_ value: TOMLNode, at path: TOMLKeyPath, range: ClosedRange<Int>, valid: String,
                        context: inout SpecContext) -> Int?
    {
        guard case .integer(let n) = value else {
            context.wrongType(value, at: path, expected: "an integer", valid: valid)
            return nil
        }
        guard range.contains(n) else {
            context.report(path, "\(n) is out of range", valid: valid)
            return nil
        }
        return n
    }

    /// "256M" → 268435456. Binary units, as cgroups and tmpfs read them.
    static func size(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> UInt64? {
        switch value {
        case .integer(let n) where n > 0: return UInt64(n)
        case .string(let text):
            if let n = parseSize(text) { return n }
            context.report(path, "\"\(text)\" is not a size", valid: sizeValid)
        case .integer: context.report(path, "a size must be greater than 0", valid: sizeValid)
        default: context.wrongType(value, at: path, expected: "a string or an integer", valid: sizeValid)
        }
        return nil
    }

    static func parseSize(_ text: String) -> UInt64? {
        var digits = text.uppercased()
        if digits.hasSuffix("B") && digits.count > 1 && !digits.dropLast().allSatisfy(\.isNumber) { digits.removeLast() }
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var multiplier: UInt64 = 1
        if let last = digits.last, let m = units[last] {
            multiplier = m
            digits.removeLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isNumber), let n = UInt64(digits), n > 0 else { return nil }
        let (r, overflow) = n.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : r
    }
}
