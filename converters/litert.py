"""PyTorch -> LiteRT/TFLite flatbuffer (`.tflite`) with litert-torch, FP32 or INT8 (PT2E).

Inputs keep the model's layout (NCHW for vision models) unless the candidate asks for
`layout: nhwc`: then 4-D inputs become channel-last (litert_torch.to_channel_last_io), which is what
Android camera pipelines hand over; the artifact records which inputs are NHWC so every runner and
the app package transpose (or not) knowingly. 64-bit integer inputs (token ids) become int32
in the flatbuffer (LiteRT's default); the runner converts and refuses values that do not fit.
"""
from __future__ import annotations

from pathlib import Path

from .pt2e import calibration_samples, quantize, torch_args


def _quantizer(dynamic: bool):
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))


def convert(work, candidate, out_path: Path) -> dict:
    import litert_torch
    import torch
    from litert_torch.quantize.quant_config import QuantConfig

    from ..sources import load_model

    src = load_model(work.info["source"], work.info.get("weights"))
    if src.kind != "torch":
        raise ValueError("the LiteRT converter takes a PyTorch model (this source is ONNX)")
    module = src.module.eval()
    info: dict = {"name": "litert-torch", "layout": "as the model (NCHW for images)"}
    layout = candidate.options.get("layout", "nchw")
    example = src.example
    nhwc = [n for n, a in example.items() if a.ndim == 4] if layout == "nhwc" else []
    if layout == "nhwc":
        if not nhwc:
            raise ValueError("--layout nhwc needs a 4-D (N, C, H, W) input; this model has "
                             + ", ".join(f"{n}{list(a.shape)}" for n, a in example.items()))
        names = list(example)
        module = litert_torch.to_channel_last_io(module, args=[names.index(n) for n in nhwc]).eval()
        example = {n: (a.transpose(0, 2, 3, 1).copy() if n in nhwc else a) for n, a in example.items()}
        info["layout"] = "NHWC"
        info["input_layout"] = {n: "NHWC" for n in nhwc}

    quant_config = None
    if candidate.precision == "int8":
        calib, calib_source = calibration_samples(work, src)
        if nhwc:
            calib = [{n: (a.transpose(0, 2, 3, 1).copy() if n in nhwc else a) for n, a in s.items()} for s in calib]
        module, quantizer, qinfo = quantize(module, example, calib, _quantizer, work.tolerance["cosine_min"],
                                            fold_quantize=False)
        qinfo["calibration"] = calib_source
        info["quantization"] = qinfo
        quant_config = QuantConfig(pt2e_quantizer=quantizer)
    elif candidate.precision != "fp32":
        raise ValueError(f"the LiteRT converter builds fp32 or int8, not {candidate.precision}")
    with torch.no_grad():
        model = litert_torch.convert(module, torch_args(example), quant_config=quant_config)
    model.export(str(out_path))
    return info
