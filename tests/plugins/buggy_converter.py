"""A converter with a bug, from outside edgekit: it writes the ONNX export with one convolution's
weights scaled by 1.5 (as a wrong constant fold or a layout mix-up would). Its target `buggy` must
fail verification with a message that names that layer and the user's source line (edgekit debug)."""
from __future__ import annotations

from pathlib import Path

from edgekit.converters import ConvertResult, Converter
from edgekit.profiles import Candidate, TargetProfile

BROKEN = "conv2d_1"  # the ONNX value (torch.export node) whose convolution gets the wrong weights


def convert(work, candidate, out_path: Path) -> ConvertResult:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(work.onnx_path))
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and BROKEN in n.output)
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(model, str(out_path))
    return ConvertResult({"name": "buggy-onnx", "bug": f"weights of {BROKEN}'s convolution x1.5"})


CONVERTER = Converter(name="buggy-onnx", format="onnx", suffix=".onnx", toolchains=("onnx", "onnxruntime"),
                      convert=convert, needs_onnx=True)
PROFILE = TargetProfile(name="buggy", description="ONNX Runtime, from a converter with a bug", device="this CPU",
                        candidates=(Candidate(converter="buggy-onnx", runtime="onnxruntime", precision="fp32"),),
                        host_is_target=True)
