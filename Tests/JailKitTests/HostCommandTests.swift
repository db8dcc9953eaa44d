import Glibc
import Testing

@testable import JailKit

/// Output over the limit is an error, and the caller gets it promptly: the program is
/// not left blocked on a full pipe with the caller in waitpid.
@Suite struct HostCommandTests {
    @Test func outputWithinTheLimitIsReturned() throws {
        let r = try HostCommand.run(["/bin/echo", "hello"], limit: 4096)
        #expect(r.status == 0 && r.output == "hello")
    }

    @Test func outputOverTheLimitThrowsPromptly() throws {
        // dd writes non-blocking, so it ends by itself on a full pipe: a HostCommand that
        // swallows the overflow then returns without an error instead of hanging the suite
        // (`timeout` cannot bound it: the test thread's blocked signals are inherited).
        let t0 = monotonic()
        #expect(throws: (any Error).self) {
            _ = try HostCommand.run(["/bin/dd", "if=/dev/zero", "bs=65536", "count=64", "oflag=nonblock"], limit: 4096)
        }
        #expect(monotonic() - t0 < 10)
    }

    @Test func endlessOutputIsCutOff() throws {
        // yes never stops by itself: only closing the pipe and killing it end it.
        #expect(throws: (any Error).self) { _ = try HostCommand.run(["/usr/bin/yes"], limit: 4096) }
    }
}
