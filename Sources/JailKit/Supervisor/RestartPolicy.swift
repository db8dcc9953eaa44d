/// What to do when a supervised jail has ended: a pure function of the policy, how it
/// ended, how long it ran and its recent restarts, so it is tested without a clock.
public enum RestartPolicy {
    public enum Decision: Equatable, Sendable {
        case stay
        case restart(after: Double, failures: Int)
        case crashLoop(restarts: Int)
    }

    /// - Parameters:
    ///   - exitStatus: raw wait status (nil: unknown, counted as a failure)
    ///   - ranFor: seconds between start and exit
    ///   - failures: failed runs in a row before this one
    ///   - recentRestarts: times of restarts within the spec's window, newest last
    ///   - jitter: a factor in [0.9, 1.1]; passed in so tests are exact
    public static func decide(_ spec: SupervisionSpec, exitStatus: Int32?, ranFor: Double, failures: Int,
                              recentRestarts: [Double], now: Double, jitter: Double) -> Decision
    {
        let succeeded = exitStatus == 0
        switch spec.restart {
        case .no: return .stay
        case .onFailure where succeeded: return .stay
        default: break
        }
        let inWindow = recentRestarts.filter { now - $0 <= spec.restartWindow }.count
        if inWindow >= spec.restartLimit { return .crashLoop(restarts: inWindow) }
        // A long healthy run starts the backoff over.
        let streak = ranFor >= spec.restartReset ? 0 : failures
        let delay = min(spec.restartMaxDelay, spec.restartDelay * pow2(streak)) * jitter
        return .restart(after: delay, failures: streak + 1)
    }

    static func pow2(_ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<min(n, 60) { r *= 2 }
        return r
    }
}
