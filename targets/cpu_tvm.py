"""cpu-tvm: this machine's CPU through Apache TVM (llvm, the host CPU named), ONNX Runtime second.

Untuned TVM Relax schedules are plain loops: the module is exact but far slower than ONNX Runtime
on a CPU (benchmarks/runtimes_vs_eager.py measures it); the target exists to run and verify TVM
itself, and as the place where tuned schedules would plug in.
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="cpu-tvm",
    description="this machine's CPU via Apache TVM (llvm); ONNX Runtime as fallback",
    device="this host's CPU (x86-64 or aarch64)",
    candidates=(
        Candidate(converter="tvm", runtime="tvm", precision="fp32"),
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="fp32"),
    ),
    host_is_target=True,
    setup="tvm",
)
