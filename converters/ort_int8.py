"""INT8 for ONNX Runtime: the ONNX export quantized with ONNX Runtime's own quantizer.

Static INT8 (QDQ format, per-channel symmetric INT8 weights, activation ranges from MinMax
calibration over the calibration set) is tried first when the compile has a calibration set.
When it misses the profile's cosine tolerance on the calibration samples — or when there is no
calibration set to calibrate on — dynamic INT8 (INT8 weights, activations quantized per inference,
what transformers usually need) is used instead, and the converter info says why with the numbers.
Held-out verification still decides pass/fail afterwards, like every other artifact.

The graph is quantized unfused: ORT's transformer fusions (com.microsoft Attention ...) are float
kernels the quantizer leaves alone, so fusing first would hide the MatMuls it should quantize.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_CALIBRATION_SAMPLES = 64
# Ops whose presence shows the quantizer changed something (a QDQ pair, or a dynamic kernel).
QUANT_OPS = ("QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
             "QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat")


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, samples: list[dict]):
        self._it = iter(samples)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # some calibrators read twice
        pass


def _run(path: Path, samples: list[dict]) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([np.concatenate([np.asarray(o, np.float64).ravel() for o in sess.run(None, s)])
                           for s in samples])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def quantized_tensors(path: Path) -> int:
    import onnx

    return sum(n.op_type in QUANT_OPS for n in onnx.load(str(path), load_external_data=False).graph.node)


def quantize(work, out_path: Path) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cosine_min = (work.tolerance or {}).get("cosine_min", 0.99)
    pre = out_path.with_name(out_path.stem + ".pre.onnx")
    # Shape inference and constant folding the quantizer needs (it skips tensors of unknown shape).
    quant_pre_process(str(work.onnx_path), str(pre), skip_symbolic_shape=True)
    calib = work.samples("calib")[0][:MAX_CALIBRATION_SAMPLES] if (work.dir / "calib.npz").exists() else []
    info: dict = {"name": "onnx-ort", "quantizer": "onnxruntime.quantization", "calibration_samples": len(calib)}
    try:
        if calib:
            float_out = _run(pre, calib)
            quantize_static(str(pre), str(out_path), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            cos = _cosine(float_out, _run(out_path, calib))
            info.update(mode="static", weights="int8 per-channel symmetric (QDQ)",
                        activations="int8 per-tensor, MinMax ranges from calibration",
                        calibration_method="minmax", static_cosine_on_calibration=round(cos, 6))
            if cos >= cosine_min:
                info["quantized_tensors"] = quantized_tensors(out_path)
                return info
            info["why_dynamic"] = (f"static INT8 reached cosine {cos:.6f} on the calibration samples, below the "
                                   f"tolerance {cosine_min}")
        else:
            info["why_dynamic"] = "no calibration set (give --calibration for static INT8): activations quantized per inference"
        quantize_dynamic(str(pre), str(out_path), per_channel=True, weight_type=QuantType.QInt8)
        info.update(mode="dynamic", weights="int8 per-channel symmetric", activations="uint8, per inference")
        if calib:
            info["dynamic_cosine_on_calibration"] = round(_cosine(float_out, _run(out_path, calib)), 6)
    finally:
        pre.unlink(missing_ok=True)
    info["quantized_tensors"] = quantized_tensors(out_path)
    if not info["quantized_tensors"]:
        raise ValueError("ONNX Runtime's quantizer quantized nothing in this graph (no Conv/MatMul/Gemm it takes): "
                         "the result would be FP32 under an INT8 label; use the fp32 artifact")
    return info
