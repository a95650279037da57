"""ios: iPhone/iPad (arm64, Apple Neural Engine + GPU + CPU): Core ML first, ExecuTorch fallback.

Core ML FP16 first: it is what iOS apps load natively, and the Neural Engine and GPU compute in
float16, so an FP16 ML Program runs there without conversion at load time. Core ML INT8 second:
int8 weights (about half the FP16 package) with FP16 arithmetic, for apps where download size
matters more than the last bit of accuracy. Core ML predictions only run on macOS, so on any
other host both packages are checked (structure, I/O, weight types, opset) but their numerics are
"not-run" until `python -m edgekit build BUNDLE` runs them on a Mac. ExecuTorch (XNNPACK, FP32)
is the fallback because it is the one artifact verified here on its real runtime, and the same
.pte runs in an iOS app through ExecuTorch's Swift/Objective-C runtime: the bundle always has a
verified artifact, and on a Linux host it is the primary. Core ML W8A8 (int8 activations too)
is built only on `--precision int8` (see converters/coreml.py for why it cannot be built with
these toolchain versions).
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="ios",
    description="iOS/iPadOS app (arm64): Core ML ML Program (.mlpackage), ExecuTorch fallback",
    device="iPhone/iPad with an A-series or M-series chip (Neural Engine + GPU + CPU), iOS 16 or later; "
           "its Core ML packages are verified on a Mac (macOS 13 or later)",
    candidates=(
        Candidate(converter="coreml", runtime="coreml", precision="fp16"),
        Candidate(converter="coreml", runtime="coreml", precision="int8"),
        Candidate(converter="executorch", runtime="executorch", precision="fp32"),
        Candidate(converter="coreml", runtime="coreml", precision="int8", variant="w8a8",
                  options={"activations": "int8"}, on_request=True),
    ),
    device_arch="arm64",
    min_delegated_flops_share=0.9,
    setup="mobile",
)
