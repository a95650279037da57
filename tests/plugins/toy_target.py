"""A target from outside edgekit: one file. It prefers the toy format and falls back to a converter
and runtime edgekit already has (ONNX Runtime), as any target that reuses converters would."""
from edgekit.profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="toy",
    description="this CPU, with a gzip-compressed ONNX file (a plug-in format) first",
    device="this machine's CPU",
    candidates=(
        Candidate(converter="toyz", runtime="toyz-ort", precision="fp32"),
        Candidate(converter="onnx-ort", runtime="onnxruntime", precision="fp32"),
    ),
    host_is_target=True,
)
