import JailKit
print("jailctl")
