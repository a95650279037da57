"""cpu: this machine's CPU (Linux x86-64 or aarch64) running ONNX Runtime.

The host *is* the target here, so latency measured on this machine is the target's latency.
Fallbacks, in order: the same graph with standard ONNX ops only (no com.microsoft fused kernels:
runs on any ONNX Runtime build), then TorchScript Mobile on the lite interpreter (a different
runtime, for when ONNX Runtime itself is missing or broken on the device).
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="cpu",
    description="Linux CPU with ONNX Runtime (CPU execution provider)",
    device="the machine edgekit runs on (x86-64 or aarch64 Linux)",
    candidates=(
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="fp32"),
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="fp32", variant="plain",
                  options={"fuse": False}),
        Candidate(converter="torchscript", runtime="torchscript-lite", precision="fp32"),
        # INT8 (ONNX Runtime's quantizer: static QDQ with a calibration set, else dynamic) on
        # `--precision int8`: on x86 without VNNI it is not always faster, so it is not the default.
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="int8", on_request=True),
        # FP16 on `--precision fp16`: float16 weights (half the file); float16 arithmetic only where
        # this ONNX Runtime has float16 CPU kernels (x86-64 builds: almost none), see ort_fp16.py.
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="fp16", on_request=True),
    ),
    host_is_target=True,
)
