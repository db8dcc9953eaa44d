import Testing

@testable import JailKit

/// The scanner on its own: positions of keys, values and array elements.
@Suite struct SpecSourceMapTests {
    func at(_ line: Int, _ column: Int) -> SourcePosition { SourcePosition(line: line, column: column) }

    @Test func plainKeysAndArrayElements() {
        let map = TOMLSourceMap(
            source: #"""
                image = "shell"
                command = ["/bin/sh", "-c", "echo # not a comment = [x]"]
                stop_timeout = 5 # a comment = [x]
                """#)
        #expect(map.keyPosition("image") == at(1, 1))
        #expect(map.valuePosition("image") == at(1, 9))
        #expect(map.keyPosition("command") == at(2, 1))
        #expect(map.valuePosition("command") == at(2, 11))
        #expect(map.valuePosition("command[0]") == at(2, 12))
        #expect(map.valuePosition("command[1]") == at(2, 23))
        #expect(map.valuePosition("command[2]") == at(2, 29))
        #expect(map.entry("command[3]") == nil)
        #expect(map.valuePosition("stop_timeout") == at(3, 16))
        #expect(map.entries.count == 6)
    }

    @Test func tablesArraysOfTablesAndInlineTables() {
        let map = TOMLSourceMap(
            source: #"""
                [env]
                PATH = "/bin"
                "MY KEY" = 'x'
                [[volumes]]
                source = "/a"
                target = "/b"
                [[volumes]]
                  target = "/c"
                [network]
                ports = [
                  80,
                  # comment [ ] = {
                  443,
                  { from = 8080, to = 80 },
                ]
                """#)
        #expect(map.keyPosition("env") == at(1, 2))
        #expect(map.keyPosition("env.PATH") == at(2, 1))
        #expect(map.valuePosition("env.PATH") == at(2, 8))
        #expect(map.keyPosition(#"env."MY KEY""#) == at(3, 1))
        #expect(map.valuePosition(#"env."MY KEY""#) == at(3, 12))
        #expect(map.keyPosition("volumes[0]") == at(4, 1))
        #expect(map.keyPosition("volumes[0].source") == at(5, 1))
        #expect(map.valuePosition("volumes[0].target") == at(6, 10))
        #expect(map.keyPosition("volumes[1]") == at(7, 1))
        #expect(map.keyPosition("volumes[1].target") == at(8, 3))
        #expect(map.valuePosition("volumes[1].target") == at(8, 12))
        #expect(map.entry("volumes[2]") == nil)
        #expect(map.keyPosition("network.ports") == at(10, 1))
        #expect(map.valuePosition("network.ports[0]") == at(11, 3))
        #expect(map.valuePosition("network.ports[1]") == at(13, 3))
        #expect(map.valuePosition("network.ports[2]") == at(14, 3))
        #expect(map.keyPosition("network.ports[2].from") == at(14, 5))
        #expect(map.keyPosition("network.ports[2].to") == at(14, 18))
        #expect(map.valuePosition("network.ports[2].to") == at(14, 23))
    }

    @Test func stringsDoNotConfuseTheScanner() {
        let map = TOMLSourceMap(
            source: #"""
                description = """
                [not.a.table]
                key = "no" # ' ''
                """
                a.b.c = 1
                "quoted.key" = 2
                lit = '''
                x = ''' # trailing
                after = { x = { y = [1, 2] } }
                s = "he said \"#[x]\" = y"
                t = 1
                q = """a""""
                r = 3
                u = 'c:\path'
                """#)
        #expect(map.valuePosition("description") == at(1, 15))
        #expect(map.entry("not") == nil)
        #expect(map.entry("key") == nil)
        #expect(map.keyPosition("a") == at(5, 1))
        #expect(map.keyPosition("a.b") == at(5, 3))
        #expect(map.keyPosition("a.b.c") == at(5, 5))
        #expect(map.valuePosition("a.b.c") == at(5, 9))
        #expect(map.keyPosition(#""quoted.key""#) == at(6, 1))
        #expect(map.entry("quoted") == nil)
        #expect(map.valuePosition("lit") == at(7, 7))
        #expect(map.entry("x") == nil)
        #expect(map.keyPosition("after") == at(9, 1))
        #expect(map.keyPosition("after.x") == at(9, 11))
        #expect(map.valuePosition("after.x") == at(9, 15))
        #expect(map.keyPosition("after.x.y") == at(9, 17))
        #expect(map.valuePosition("after.x.y[0]") == at(9, 22))
        #expect(map.valuePosition("after.x.y[1]") == at(9, 25))
        #expect(map.keyPosition("s") == at(10, 1))
        #expect(map.keyPosition("t") == at(11, 1))
        #expect(map.keyPosition("q") == at(12, 1))
        #expect(map.keyPosition("r") == at(13, 1))
        #expect(map.valuePosition("u") == at(14, 5))
    }

    @Test func nestedArraysOfTables() {
        let map = TOMLSourceMap(
            source: """
                [[a]]
                [[a.b]]
                x = 1
                [[a]]
                [[a.b]]
                [a.c]
                y = 2
                """)
        #expect(map.keyPosition("a[0]") == at(1, 1))
        #expect(map.keyPosition("a[0].b[0]") == at(2, 1))
        #expect(map.keyPosition("a[0].b[0].x") == at(3, 1))
        #expect(map.keyPosition("a[1]") == at(4, 1))
        #expect(map.keyPosition("a[1].b[0]") == at(5, 1))
        #expect(map.keyPosition("a[1].c") == at(6, 4))
        #expect(map.keyPosition("a[1].c.y") == at(7, 1))
    }

    @Test func brokenInputDoesNotHideLaterLines() {
        let map = TOMLSourceMap(
            source: """
                image = = "x" ]]
                }{ garbage = [
                command = ["/bin/sh"]
                user = "root"
                """)
        // Whatever happens on the broken lines, the scan terminates and a later line
        // that is fine on its own keeps its position when the scanner resynchronises.
        #expect(map.keyPosition("image") == at(1, 1))
        #expect(map.keyPosition("command") == at(3, 1))
        #expect(map.valuePosition("user") == at(4, 8))
        let unterminated = TOMLSourceMap(source: "a = \"never closed\nb = 1\nc = '''\nd = 2")
        #expect(unterminated.keyPosition("b") == at(2, 1))
        #expect(unterminated.entry("d") == nil)
    }

    @Test func fallbackPositions() {
        let map = TOMLSourceMap(source: "x = 1\n[[volumes]]\nsource = \"/a\"\n")
        #expect(map.position(of: TOMLKeyPath.root.appending("missing"), preferValue: false) == .start)
        let target = TOMLKeyPath.root.appending("volumes").appending(index: 0).appending("target")
        #expect(map.position(of: target, preferValue: false) == at(2, 1))
        #expect(target.description == "volumes[0].target")
        #expect(TOMLKeyPath.root.appending("env").appending("A B").description == #"env."A B""#)
    }
}
