"""Mixed precision for ONNX Runtime's dynamic INT8 (converters/ort_dynamic_mixed.py): on a model
without convolutions whose hidden activation has one outlier channel, per-inference INT8 of the
layer that reads it crushes every other channel; the search keeps exactly that layer float."""
import numpy as np
import pytest

pytestmark = [pytest.mark.onnxruntime]


def test_dynamic_search_keeps_the_outlier_reader_float(tmp_path):
    import onnx
    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekit.converters.ort_dynamic_mixed import search, target_cosine, weight_layers, worst_cosine
    from edgekit.converters.ort_int8 import _dynamic, weight_range
    from edgekit.converters.ort_mixed import run

    torch.manual_seed(0)
    first, second, third = torch.nn.Linear(16, 64), torch.nn.Linear(64, 16), torch.nn.Linear(16, 8)
    with torch.no_grad():
        first.weight[0] *= 2000.0  # hidden channel 0: ~1000x the others
        second.weight[:, 0] /= 2000.0  # so the float model's output stays balanced
    model = torch.nn.Sequential(first, torch.nn.ReLU(), second, torch.nn.ReLU(), third).eval()
    samples = [{"x": np.random.default_rng(i).standard_normal((4, 16)).astype(np.float32)} for i in range(24)]
    torch.onnx.export(model, (torch.from_numpy(samples[0]["x"]),), tmp_path / "f.onnx", input_names=["x"],
                      dynamo=True, external_data=False)
    pre = tmp_path / "pre.onnx"
    quant_pre_process(str(tmp_path / "f.onnx"), str(pre), skip_symbolic_shape=True)
    layers = [n.name for n in weight_layers(onnx.load(str(pre)))]
    assert len(layers) == 3
    ref = run(str(pre), samples)
    dst = tmp_path / "q.onnx"
    seven_bit = weight_range()[0]  # as the converter quantizes on this CPU (7-bit weights without VNNI)
    _dynamic(pre, dst, seven_bit)
    assert worst_cosine(ref, run(str(dst), samples)) < target_cosine(0.99)  # all INT8 misses
    report = search(pre, dst, samples, ref, 0.99, lambda s, d, ex: _dynamic(s, d, seven_bit, ex))
    assert report["met"], report
    assert [r["node"] for r in report["float_layers"]] == [layers[1]], report  # the outlier's reader, no more
    assert worst_cosine(ref, run(str(dst), samples)) >= target_cosine(0.99)
    assert report["ranking"][0]["node"] == layers[1] and not list(tmp_path.glob("*.trial.onnx"))
