"""jetson: NVIDIA Jetson Orin (aarch64 + an Ampere GPU, compute capability 8.7, TensorRT).

TensorRT FP16 first; its engine is built on the Jetson itself (`python -m edgekit build BUNDLE`),
because an engine only loads on the GPU and TensorRT version that built it. Then a TVM module
with CUDA kernels compiled here for sm_87, a TVM module for the Jetson's Cortex-A78AE CPU, and
the portable ONNX graph for ONNX Runtime's aarch64 wheel, which is also verified on this host.
Nothing here can run the first three: they are checked (ELF, entry points, kernels compile for
sm_87, the TensorRT-ready graph's numerics on ONNX Runtime) and marked not-run until the device
verifies them.
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="jetson",
    description="NVIDIA Jetson Orin (aarch64 + GPU sm_87): TensorRT, TVM CUDA/CPU, ONNX Runtime",
    device="NVIDIA Jetson Orin (Nano/NX/AGX), 6-12x Cortex-A78AE + Ampere GPU (sm_87), JetPack 6",
    candidates=(
        Candidate(converter="tensorrt", runtime="tensorrt", precision="fp16"),
        Candidate(converter="tvm-cuda", runtime="tvm", precision="fp32", variant="cuda-sm87",
                  options={"cuda_arch": "sm_87"}),
        Candidate(converter="tvm-aarch64", runtime="tvm", precision="fp32", variant="aarch64"),
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="fp32", variant="plain",
                  options={"fuse": False}),
    ),
    device_arch="aarch64",
    # emulated device (edgekit device start arm64 --target jetson): the Orin's Cortex-A78AE: QEMU 7.2 has no A78; the A76 has its ISA features (v8.2, dot product, FP16, no SVE/I8MM)
    emulated_cpu="cortex-a76",
    setup="tvm",
)
