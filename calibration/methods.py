"""Calibration methods, mapped onto each quantizer's own calibrators. A method a quantizer lacks
is an error that lists what it has: never a silent substitute.

  minmax      the observed min and max of each activation
  percentile  clip the range at a percentile of |values| (outliers stop stretching the scale)
  entropy     the range whose quantized histogram keeps the most information (KL divergence)
  mse         the range with the least L2 quantization error
"""
from __future__ import annotations

METHODS = ("minmax", "percentile", "entropy", "mse")
DEFAULT_PERCENTILE = 99.999

# quantizer -> method -> what implements it there
SUPPORT: dict[str, dict[str, str]] = {
    "onnxruntime": {
        "minmax": "onnxruntime.quantization CalibrationMethod.MinMax",
        "percentile": "onnxruntime.quantization CalibrationMethod.Percentile (CalibPercentile)",
        "entropy": "onnxruntime.quantization CalibrationMethod.Entropy (KL divergence, 2048-bin histogram)",
    },
    # PT2E's XNNPACK quantizer configs (ExecuTorch's and litert-torch's) observe static activations
    # with HistogramObserver, which picks the range with the least L2 error; no other is wired.
    "pt2e": {"mse": "torchao HistogramObserver (XNNPACK quantizer's static activation observer)"},
}
DEFAULTS = {"onnxruntime": "minmax", "pt2e": "mse"}
# converter -> the quantizer whose calibrators its INT8 candidates use. TF.js and Core ML INT8 store
# weights only (no activation ranges), so no calibration method applies to them.
QUANTIZER_OF = {"onnx-ort": "onnxruntime", "litert": "pt2e", "executorch": "pt2e"}


def unsupported(converter: str, method: str) -> str | None:
    """Why an INT8 candidate of `converter` cannot use `method`, or None when it can: known from
    this table before any model is loaded, so compile refuses it up front."""
    quantizer = QUANTIZER_OF.get(converter)
    if quantizer is None:
        return f"{converter} INT8 quantizes weights only; no calibration method applies"
    try:
        resolve(quantizer, method)
    except ValueError as e:
        return str(e)
    return None


def resolve(quantizer: str, method: str | None) -> str:
    """The method to use with this quantizer: the requested one if it has it, else its default."""
    if method is None:
        return DEFAULTS[quantizer]
    if method not in SUPPORT[quantizer]:
        raise ValueError(f"{quantizer} has no {method} calibration; it supports: "
                         + ", ".join(f"{m} ({how})" for m, how in SUPPORT[quantizer].items()))
    return method
