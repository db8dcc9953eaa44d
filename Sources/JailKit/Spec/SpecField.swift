/// One key of a spec file: its name, whether it must be present, what a valid value looks
/// like (quoted in diagnostics), and how to decode it into the file's draft.
///
/// Schemas are arrays of these, so adding a key (limits, network, seccomp, ...) is one
/// entry in the array plus its decoding closure; unknown-key detection, did-you-mean
/// suggestions and missing-key errors follow from the array without further code.
struct SpecField<Draft>: Sendable {
    typealias Decode = @Sendable (
        _ value: TOMLNode, _ path: TOMLKeyPath, _ draft: inout Draft, _ context: inout SpecContext
    ) -> Void

    let key: String
    let required: Bool
    let valid: String
    let decode: Decode

    init(_ key: String, required: Bool = false, valid: String, decode: @escaping Decode) {
        self.key = key
        self.required = required
        self.valid = valid
        self.decode = decode
    }
}
