"""cpu: this machine's CPU (Linux x86-64 or aarch64) running ONNX Runtime.

The host *is* the target here, so latency measured on this machine is the target's latency.
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="cpu",
    description="Linux CPU with ONNX Runtime (CPU execution provider)",
    device="the machine edgekit runs on (x86-64 or aarch64 Linux)",
    candidates=(
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="fp32"),
    ),
    host_is_target=True,
)
