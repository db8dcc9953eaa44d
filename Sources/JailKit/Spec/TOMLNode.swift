import TOMLKit

/// A parsed TOML value as a plain Sendable tree.
///
/// TOMLKit hands out non-Sendable classes wrapping toml++ pointers; copying the document
/// once into this enum keeps the validators pure value code and TOMLKit at one place.
indirect enum TOMLNode: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    case array([TOMLNode])
    case table([String: TOMLNode])
    /// Dates and times: no spec key takes them, so only the type name is kept for messages.
    case other(typeName: String)

    init(_ value: TOMLValueConvertible) {
        switch value.type {
        case .string:
            self = .string(value.string ?? "")
        case .int:
            self = .integer(value.int ?? 0)
        case .double:
            self = .float(value.double ?? 0)
        case .bool:
            self = .boolean(value.bool ?? false)
        case .array:
            self = .array(value.array.map { $0.map { TOMLNode($0) } } ?? [])
        case .table:
            self = value.table.map { TOMLNode(table: $0) } ?? .table([:])
        case .date, .time, .dateTime:
            self = .other(typeName: value.type.description)
        }
    }

    init(table: TOMLTable) {
        var children: [String: TOMLNode] = [:]
        for key in table.keys {
            if let child = table[key] {
                children[key] = TOMLNode(child)
            }
        }
        self = .table(children)
    }

    /// The type as a message says it: "found an integer".
    var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a float"
        case .boolean: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        case .other(let name): return "a \(name)"
        }
    }
}
