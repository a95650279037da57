"""android: Android phones (arm64), LiteRT first, ExecuTorch second, TorchScript Mobile last.

This machine is not a phone: every artifact here is verified on its real runtime running on the
host (parity recorded as `host-runtime`), and host timings are host timings. So the primary is the
first verified candidate in this preference order, and the manifest says the choice was not
measured on the device. INT8 first: phones' XNNPACK kernels are fastest on INT8 and the file is
~4x smaller; the FP32 LiteRT artifact is the fallback when INT8 misses the tolerance.
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="android",
    description="Android (arm64) app: LiteRT interpreter, ExecuTorch or PyTorch Mobile",
    device="Android phone, arm64-v8a CPU with XNNPACK",
    candidates=(
        Candidate(converter="litert", runtime="litert", precision="int8"),
        Candidate(converter="litert", runtime="litert", precision="fp32"),
        Candidate(converter="executorch", runtime="executorch", precision="int8"),
        Candidate(converter="executorch", runtime="executorch", precision="fp32"),
        Candidate(converter="torchscript", runtime="torchscript-lite", precision="fp32"),
        # FP16 on `--precision fp16` (or auto): half the file; float16 arithmetic where the phone has it
        Candidate(converter="litert", runtime="litert", precision="fp16", on_request=True),
        Candidate(converter="executorch", runtime="executorch", precision="fp16", on_request=True),
    ),
    device_arch="aarch64",
    # emulated device (edgekit device start arm64 --target android): a typical phone's big core: Cortex-A76-class, NEON + dot product
    emulated_cpu="cortex-a76",
    min_delegated_flops_share=0.9,
    setup="mobile",
)
