#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The dynamic-linking view of one ELF64 little-endian object: what the loader reads
/// before mapping it. Parsing never trusts an offset: a hostile or truncated file yields
/// an `ELFFile.Error`, never a trap.
public struct ELFFile: Sendable, Hashable {
    public enum Machine: Sendable, Hashable, CustomStringConvertible {
        case x86_64
        case aarch64

        init?(rawValue: UInt16) {
            switch rawValue {
            case 62: self = .x86_64
            case 183: self = .aarch64
            default: return nil
            }
        }

        /// The machine this process runs on, which is the one whose loader and cache we model.
        public static var host: Machine {
            #if arch(arm64)
            return .aarch64
            #else
            return .x86_64
            #endif
        }

        public var description: String {
            switch self {
            case .x86_64: return "x86_64"
            case .aarch64: return "aarch64"
            }
        }
    }

    public enum ObjectType: Sendable, Hashable {
        case executable  // ET_EXEC
        case sharedObject  // ET_DYN: libraries and PIE executables alike
    }

    public enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        case unreadable(path: String, errno: Int32)
        case notELF(path: String)
        case unsupportedClass(path: String, elfClass: UInt8)
        case unsupportedByteOrder(path: String)
        case unsupportedMachine(path: String, machine: UInt16)
        case unsupportedType(path: String, type: UInt16)
        case truncated(path: String, what: String)
        case malformed(path: String, what: String)

        public var description: String {
            switch self {
            case .unreadable(let p, let e): return "\(p): cannot read (errno \(e))"
            case .notELF(let p): return "\(p): not an ELF file"
            case .unsupportedClass(let p, let c): return "\(p): ELF class \(c) not supported (only ELF64)"
            case .unsupportedByteOrder(let p): return "\(p): big-endian ELF not supported"
            case .unsupportedMachine(let p, let m): return "\(p): e_machine \(m) not supported (only x86_64, aarch64)"
            case .unsupportedType(let p, let t): return "\(p): e_type \(t) is neither EXEC nor DYN"
            case .truncated(let p, let w): return "\(p): truncated (\(w))"
            case .malformed(let p, let w): return "\(p): malformed (\(w))"
            }
        }
    }

    /// Identity of the underlying inode: the loader treats two paths to the same file as
    /// one object, and so must the closure.
    public struct FileID: Sendable, Hashable {
        public var device: UInt64
        public var inode: UInt64
    }

    public var path: String
    public var fileID: FileID
    public var machine: Machine
    public var type: ObjectType
    /// PT_INTERP, without its NUL.
    public var interpreter: String?
    /// DT_NEEDED in file order: the loader's breadth-first order depends on it.
    public var needed: [String]
    /// nil when the tag is absent, which differs from present-but-empty for the loader.
    public var rpath: [String]?
    public var runpath: [String]?
    public var soname: String?
    /// DT_FLAGS_1 & DF_1_NODEFLIB: the loader then skips the cache's system entries and
    /// the default directories for this object's dependencies.
    public var noDefaultLibraries: Bool
    /// Has PT_DYNAMIC. Static (and static-pie) binaries need nothing at run time.
    public var hasDynamicSection: Bool

    /// Static-pie has PT_DYNAMIC but neither PT_INTERP nor DT_NEEDED; like a library that
    /// needs nothing (ld.so itself) it pulls nothing in, which is what ldd's "statically
    /// linked" means.
    public var isDynamic: Bool { hasDynamicSection && (interpreter != nil || !needed.isEmpty) }

    public init(path: String) throws(Error) {
        do {
            self = try MappedFile.withMapping(path) { bytes in try ELFFile(bytes: bytes, path: path) }
        } catch let error as Error {
            throw error
        } catch MappedFile.OpenError.system(let code) {
            throw .unreadable(path: path, errno: code)
        } catch {
            throw .truncated(path: path, what: "empty file")
        }
    }

    init(bytes: MappedFile.Bytes, path: String) throws(Error) {
        self.path = path
        fileID = FileID(device: bytes.device, inode: bytes.inode)
        let header = try Header(bytes, path: path)
        machine = header.machine
        type = header.type
        let segments = try Self.programHeaders(bytes, header, path: path)

        interpreter = nil
        if let interp = segments.first(where: { $0.type == Self.ptInterp }) {
            guard let r = bytes.range(interp.offset, interp.fileSize) else {
                throw .truncated(path: path, what: "PT_INTERP outside the file")
            }
            guard let s = bytes.cString(at: interp.offset, limit: r.upperBound) else {
                throw .malformed(path: path, what: "PT_INTERP not NUL-terminated")
            }
            interpreter = s
        }

        needed = []
        rpath = nil
        runpath = nil
        soname = nil
        noDefaultLibraries = false
        hasDynamicSection = false
        guard let dynamic = segments.first(where: { $0.type == Self.ptDynamic }) else { return }
        hasDynamicSection = true
        let tags = try Self.dynamicEntries(bytes, dynamic, path: path)
        try readDynamicStrings(bytes, tags: tags, loads: segments.filter { $0.type == Self.ptLoad })
    }

    private mutating func readDynamicStrings(
        _ bytes: MappedFile.Bytes, tags: [(tag: Int64, value: UInt64)], loads: [Segment]
    ) throws(Error) {
        let path = self.path
        let flags1 = tags.last(where: { $0.tag == Self.dtFlags1 })?.value ?? 0
        noDefaultLibraries = flags1 & Self.df1NoDefLib != 0
        let stringTags: Set<Int64> = [Self.dtNeeded, Self.dtRPath, Self.dtRunPath, Self.dtSOName]
        guard tags.contains(where: { stringTags.contains($0.tag) }) else { return }
        guard let strtab = tags.first(where: { $0.tag == Self.dtStrTab })?.value else {
            throw .malformed(path: path, what: "string tags without DT_STRTAB")
        }
        // DT_STRTAB is a virtual address: only a PT_LOAD says where those bytes are in the file.
        guard let load = loads.first(where: { strtab >= $0.vaddr && strtab - $0.vaddr < $0.fileSize }) else {
            throw .malformed(path: path, what: "DT_STRTAB not inside any PT_LOAD")
        }
        let (tableOffset, overflow) = load.offset.addingReportingOverflow(strtab - load.vaddr)
        guard !overflow else { throw .malformed(path: path, what: "DT_STRTAB offset overflows") }
        let available = load.fileSize - (strtab - load.vaddr)
        let size = min(tags.first(where: { $0.tag == Self.dtStrSz })?.value ?? available, available)
        guard let table = bytes.range(tableOffset, size) else {
            throw .truncated(path: path, what: "string table outside the file")
        }
        func string(_ index: UInt64) throws(Error) -> String {
            guard index < UInt64(table.count),
                let s = bytes.cString(at: UInt64(table.lowerBound) + index, limit: table.upperBound)
            else { throw .malformed(path: path, what: "string index \(index) outside DT_STRTAB") }
            return s
        }
        for (tag, value) in tags {
            switch tag {
            case Self.dtNeeded: needed.append(try string(value))
            case Self.dtSOName: soname = try string(value)
            case Self.dtRPath: rpath = (rpath ?? []) + Self.splitPath(try string(value))
            case Self.dtRunPath: runpath = (runpath ?? []) + Self.splitPath(try string(value))
            default: break
            }
        }
        // glibc drops DT_RPATH when DT_RUNPATH is present (elf_get_dynamic_info), so the
        // RPATH of such an object is invisible even to objects it loads.
        if runpath != nil { rpath = nil }
    }

    /// Empty elements are kept: the loader reads them as the current directory.
    static func splitPath(_ s: String) -> [String] {
        s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    }

    // MARK: raw structures

    struct Header {
        var machine: Machine
        var type: ObjectType
        var phoff: UInt64
        var phentsize: UInt64
        var phnum: UInt64

        init(_ bytes: MappedFile.Bytes, path: String) throws(Error) {
            guard bytes.count >= 4, bytes.load(0, as: UInt32.self) == 0x464C_457F else {
                throw .notELF(path: path)
            }
            guard bytes.count >= 64, let cls = bytes.load(4, as: UInt8.self), let data = bytes.load(5, as: UInt8.self),
                let rawType = bytes.load(16, as: UInt16.self), let rawMachine = bytes.load(18, as: UInt16.self),
                let phoff = bytes.load(32, as: UInt64.self), let phentsize = bytes.load(54, as: UInt16.self),
                let phnum = bytes.load(56, as: UInt16.self)
            else { throw .truncated(path: path, what: "ELF header") }
            guard cls == 2 else { throw .unsupportedClass(path: path, elfClass: cls) }
            guard data == 1 else { throw .unsupportedByteOrder(path: path) }
            guard let machine = Machine(rawValue: rawMachine) else {
                throw .unsupportedMachine(path: path, machine: rawMachine)
            }
            switch rawType {
            case 2: type = .executable
            case 3: type = .sharedObject
            default: throw .unsupportedType(path: path, type: rawType)
            }
            // PN_XNUM (0xffff) would move the count to section 0; no loadable object needs it.
            guard phentsize >= 56, phnum != 0xFFFF else {
                throw .malformed(path: path, what: "program header size \(phentsize) / count \(phnum)")
            }
            self.machine = machine
            self.phoff = phoff
            self.phentsize = UInt64(phentsize)
            self.phnum = UInt64(phnum)
        }
    }

    struct Segment {
        var type: UInt32
        var offset: UInt64
        var vaddr: UInt64
        var fileSize: UInt64
    }

    static let ptLoad: UInt32 = 1
    static let ptDynamic: UInt32 = 2
    static let ptInterp: UInt32 = 3
    static let dtNeeded: Int64 = 1
    static let dtStrTab: Int64 = 5
    static let dtStrSz: Int64 = 10
    static let dtSOName: Int64 = 14
    static let dtRPath: Int64 = 15
    static let dtRunPath: Int64 = 29
    static let dtFlags1: Int64 = 0x6fff_fffb
    static let df1NoDefLib: UInt64 = 0x800

    static func programHeaders(_ bytes: MappedFile.Bytes, _ h: Header, path: String) throws(Error) -> [Segment] {
        // phnum <= 0xfffe and phentsize <= 0xffff, so the product cannot overflow.
        guard bytes.range(h.phoff, h.phnum * h.phentsize) != nil else {
            throw .truncated(path: path, what: "program headers")
        }
        var result: [Segment] = []
        result.reserveCapacity(Int(h.phnum))
        for i in 0..<h.phnum {
            let base = h.phoff + i * h.phentsize
            guard let type = bytes.load(base, as: UInt32.self), let offset = bytes.load(base + 8, as: UInt64.self),
                let vaddr = bytes.load(base + 16, as: UInt64.self), let size = bytes.load(base + 32, as: UInt64.self)
            else { throw .truncated(path: path, what: "program header \(i)") }
            result.append(Segment(type: type, offset: offset, vaddr: vaddr, fileSize: size))
        }
        return result
    }

    static func dynamicEntries(_ bytes: MappedFile.Bytes, _ dynamic: Segment, path: String) throws(Error)
        -> [(tag: Int64, value: UInt64)]
    {
        guard let r = bytes.range(dynamic.offset, dynamic.fileSize) else {
            throw .truncated(path: path, what: "PT_DYNAMIC outside the file")
        }
        var result: [(tag: Int64, value: UInt64)] = []
        var at = UInt64(r.lowerBound)
        while at + 16 <= UInt64(r.upperBound) {
            guard let tag = bytes.load(at, as: Int64.self), let value = bytes.load(at + 8, as: UInt64.self) else {
                throw .truncated(path: path, what: "dynamic entry")
            }
            if tag == 0 { return result }
            result.append((tag, value))
            at += 16
        }
        // The loader stops at DT_NULL; a table without one is read to the segment's end.
        return result
    }
}
