"""ONNX Runtime INT8 weight range (converters/ort_int8.weight_range): 7-bit weights where this CPU's
u8 x s8 kernels saturate, 8-bit where they do not — checked against ONNX Runtime's real kernels
on this machine with a layer built to overflow the int16 pair sum."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.onnxruntime]


def test_weight_range_follows_the_cpu():
    from edgekit.converters.ort_int8 import weight_range

    assert weight_range("x86_64", {"avx2", "fma"})[0] is True
    assert "no VNNI" in weight_range("x86_64", {"avx2"})[1]
    assert weight_range("x86_64", {"avx2", "avx512f", "avx512_vnni"}) == (
        False, "8-bit weights (this CPU has avx512_vnni: u8 x s8 products accumulate in int32)")
    assert weight_range("x86_64", {"avx2", "avx_vnni"})[0] is False
    assert weight_range("aarch64", set())[0] is False
    assert weight_range("x86_64", set())[0] is True  # flags unreadable: assume the kernels saturate


def _pointwise(path, channels=64):
    """A 1x1 convolution with every weight at its channel's maximum: each pair of u8 x s8 products
    is 2 x 255 x 127 = 64770, twice what int16 holds, whenever the input sits at the top of its range."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.ones((8, channels, 1, 1), np.float32) * np.linspace(0.5, 1.0, 8, dtype=np.float32)[:, None, None, None]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")], "pointwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(8, np.float32), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_reduced_range_avoids_the_saturation_this_cpu_has(tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from edgekit.converters.ort_int8 import _Reader, weight_range
    from edgekit.converters.ort_mixed import run

    _pointwise(tmp_path / "f.onnx")
    rng = np.random.default_rng(0)
    calib = [{"x": rng.uniform(0, 6, (1, 64, 4, 4)).astype(np.float32)} for _ in range(8)]
    calib[0]["x"][:] = 6.0  # the range's top is reached
    held_out = [{"x": np.full((1, 64, 4, 4), 5.9, np.float32)}, {"x": rng.uniform(4, 6, (1, 64, 4, 4)).astype(np.float32)}]
    ref = run(str(tmp_path / "f.onnx"), held_out)["y"]
    errors = {}
    for reduce in (False, True):
        out = tmp_path / f"q{int(reduce)}.onnx"
        quantize_static(str(tmp_path / "f.onnx"), str(out), _Reader(calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        reduce_range=reduce)
        errors[reduce] = float(np.abs(run(str(out), held_out)["y"] - ref).max() / np.abs(ref).max())
    print("max relative error, 8-bit / 7-bit weights:", errors)
    assert errors[True] < 0.02, errors  # 7-bit weights: only rounding error
    if weight_range()[0]:
        # This CPU is one weight_range reduces for: full-range weights must really saturate here.
        assert errors[False] > 0.2, errors
    else:
        assert errors[False] < 0.02, errors  # VNNI or Arm: 8 bits are safe, and sharper


def test_entropy_calibration_is_not_minmax(tmp_path):
    """ONNX Runtime's quantize_static runs its entropy calibrator with 128 bins for 128 quantized
    bins, which leaves the KL search one threshold: the minmax range. ort_int8 computes the entropy
    ranges itself with 2048 bins; on a heavy-tailed activation they must clip the tail."""
    import onnx
    from onnx import TensorProto, helper
    from onnxruntime.quantization.calibrate import load_tensors_data

    from edgekit.converters.ort_int8 import _entropy_ranges

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "tail",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "f.onnx"))
    rng = np.random.default_rng(1)
    calib = [{"x": rng.standard_normal((1, 4096)).astype(np.float32)} for _ in range(8)]
    calib[3]["x"][0, :4] = 40.0  # a handful of outliers stretch minmax to 40
    report = _entropy_ranges(tmp_path / "f.onnx", calib, tmp_path / "ranges.json")
    low, high = (float(v) for v in load_tensors_data(tmp_path / "ranges.json")["y"].range_value)
    assert report["bins"] == 2048
    assert high < 10.0, (low, high)  # minmax would be 40: the KL threshold clips the outliers
    assert high > 2.0, (low, high)  # and keeps the bulk of a unit normal's positive half
