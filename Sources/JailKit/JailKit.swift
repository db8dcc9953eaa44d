// JailKit: the library behind jailctl. Spec → validated model → image → launch plan →
// launch → state. Each folder holds one step.
