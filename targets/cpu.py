"""cpu: this machine's CPU (Linux x86-64 or aarch64): ONNX Runtime by default, and every other
runtime that runs on this CPU on request.

The host *is* the target here, so latency measured on this machine is the target's latency.
Default candidates (a plain `compile`, no timing): ONNX Runtime, then the same graph with standard
ONNX ops only (no com.microsoft fused kernels: runs on any ONNX Runtime build), then TorchScript
Mobile on the lite interpreter (a different runtime, for when ONNX Runtime itself is missing or
broken on the device).

With `--precision` (fp32, int8, fp16 or auto) every candidate of that precision is built, the
XNNPACK runtimes included, each is timed here, and the fastest verified one becomes primary
(edgekit.primary). ExecuTorch and LiteRT are on-request only because their builds cost a default
compile minutes it would pay for nothing when the user just wants an ONNX file. Which runtime is
fastest depends on the CPU, the model and the precision, so it is measured: EfficientNet-Lite0 FP32
at one thread on a 2-core AVX-512 VNNI EPYC, ONNX Runtime 8.76 ms, ExecuTorch 9.62, LiteRT 9.64
(an earlier measurement on this project, another host, had ExecuTorch fastest); its INT8 on
ExecuTorch ran 0.70x ExecuTorch FP32 there, and MiniLM INT8 on LiteRT 0.31x LiteRT FP32.
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="cpu",
    description="Linux CPU: ONNX Runtime, and on request ExecuTorch (XNNPACK) and LiteRT; the fastest verified is primary",
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
        # The XNNPACK runtimes, FP32 and INT8 (PT2E, XNNPACKQuantizer), on request: see above.
        Candidate(converter="executorch", runtime="executorch", precision="fp32", on_request=True),
        Candidate(converter="executorch", runtime="executorch", precision="int8", on_request=True),
        Candidate(converter="litert", runtime="litert", precision="fp32", on_request=True),
        Candidate(converter="litert", runtime="litert", precision="int8", on_request=True),
    ),
    host_is_target=True,
    # `--precision` builds the on-request ExecuTorch and LiteRT candidates: their toolchains
    # (scripts/setup_for.py reads this for `./ek compile --target cpu --precision ...`).
    precision_setup="mobile",
)
