"""rpi: Raspberry Pi 4/5 (aarch64 Linux CPU): LiteRT first, ONNX Runtime second.

Both runtimes ship aarch64 Linux wheels (`ai-edge-litert`, `onnxruntime`); the portable ONNX graph
(standard ops only) is the fallback, in case the device's ONNX Runtime lacks the fused kernels.
On an x86 host nothing here measures the Pi: preference order decides the primary.
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="rpi",
    description="Raspberry Pi (aarch64 Linux CPU): LiteRT interpreter or ONNX Runtime",
    device="Raspberry Pi 4/5, 4x Cortex-A72/A76, aarch64 Linux",
    candidates=(
        Candidate(converter="litert", runtime="litert", precision="int8"),
        Candidate(converter="litert", runtime="litert", precision="fp32"),
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="fp32", variant="plain",
                  options={"fuse": False}),
        # FP16 weights on `--precision fp16`: half the file; float16 arithmetic on a Pi 5 (Cortex-A76), not a Pi 4
        Candidate(converter="litert", runtime="litert", precision="fp16", on_request=True),
    ),
    device_arch="aarch64",
    # emulated device (edgekit device start arm64 --target rpi): Raspberry Pi 4's Cortex-A72: no dot product, the slower INT8 kernels (a Pi 5 is cortex-a76)
    emulated_cpu="cortex-a72",
    min_delegated_flops_share=0.9,
    setup="mobile",
)
