"""Bias correction of INT8 weights (converters/bias_correction.py): the math against a brute-force
convolution, and on a real ONNX Runtime QDQ graph the case it exists for — taps that cancel out,
fed by a saturated ReLU6."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.onnxruntime]


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_delta_bias_equals_the_output_shift_of_a_constant_input(groups):
    import torch

    from edgekit.converters.bias_correction import delta_bias

    rng = np.random.default_rng(groups)
    dw = rng.standard_normal((8, 4 // groups * 1, 3, 3)).astype(np.float32) if groups > 1 else \
        rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    mean_in = rng.standard_normal(4).astype(np.float32)
    x = torch.from_numpy(np.broadcast_to(mean_in[None, :, None, None], (1, 4, 9, 9)).copy())
    shift = torch.nn.functional.conv2d(x, torch.from_numpy(dw), groups=groups)[0, :, 3, 3].numpy()
    np.testing.assert_allclose(delta_bias(dw, mean_in, groups), shift, rtol=1e-4, atol=1e-5)
    w2 = rng.standard_normal((5, 4))
    np.testing.assert_allclose(delta_bias(w2, mean_in), w2 @ mean_in)
    np.testing.assert_allclose(delta_bias(w2.T, mean_in, trans_b=False), w2 @ mean_in)


def test_correct_qdq_removes_the_mean_shift_of_cancelling_taps(tmp_path):
    import onnx
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekit.converters.bias_correction import correct_qdq
    from edgekit.converters.ort_int8 import _Reader
    from edgekit.converters.ort_mixed import float_outputs, noise, run

    torch.manual_seed(0)
    stem = torch.nn.Conv2d(3, 8, 3, padding=1)
    dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
    with torch.no_grad():
        stem.bias.fill_(8.0)  # ReLU6 saturates: the depthwise layer mostly sees a flat 6
        w = torch.randn(8, 1, 3, 3) * 5
        dw.weight.copy_(w - w.mean(dim=(2, 3), keepdim=True))  # edge detectors: taps sum to 0
    model = torch.nn.Sequential(stem, torch.nn.ReLU6(), dw).eval()
    samples = [{"x": np.random.default_rng(i).random((1, 3, 16, 16)).astype(np.float32)} for i in range(16)]
    torch.onnx.export(model, (torch.from_numpy(samples[0]["x"]),), tmp_path / "f.onnx", input_names=["x"],
                      dynamo=True, external_data=False)
    quant_pre_process(str(tmp_path / "f.onnx"), str(tmp_path / "pre.onnx"), skip_symbolic_shape=True)
    quantize_static(str(tmp_path / "pre.onnx"), str(tmp_path / "q.onnx"), _Reader(samples), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    extra_options={"QDQKeepRemovableActivations": True})
    q = onnx.load(str(tmp_path / "q.onnx"))
    float_outputs(q)  # the output stays float, as ort_int8 ships it
    ref = run(str(tmp_path / "pre.onnx"), samples)
    before = noise(ref, run(q, samples))
    report = correct_qdq(q, str(tmp_path / "pre.onnx"), samples)
    after = noise(ref, run(q, samples))
    assert report["layers"] == 2
    assert after < 0.5 * before, (before, after)
    held_out = [{"x": np.random.default_rng(100 + i).random((1, 3, 16, 16)).astype(np.float32)} for i in range(8)]
    uncorrected = onnx.load(str(tmp_path / "q.onnx"))
    float_outputs(uncorrected)
    ref_h = run(str(tmp_path / "pre.onnx"), held_out)
    assert noise(ref_h, run(q, held_out)) < 0.5 * noise(ref_h, run(uncorrected, held_out))  # not fitted to calibration


def test_sequential_correction_removes_the_mean_shift_activation_rounding_causes(tmp_path):
    """Channel 0 of the first layer spans 0..~50, so the ReLU output's per-tensor uint8 grid has a
    step of ~0.2, and channels 1-7 (0.10-0.11) all round to one step: the second layer's output
    mean moves by W2 @ ~0.09. No weight-rounding correction can see that; the sequential one, which
    runs the quantized prefix, removes it (and not only on the calibration samples). One input
    channel, so no pair of u8 x s8 products can saturate ONNX Runtime's int16 sums on a CPU without
    VNNI: with three, channel 0 was clipped there and the error was that, not a mean shift."""
    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekit.converters.bias_correction import correct_qdq, correct_qdq_sequential
    from edgekit.converters.ort_int8 import static_qdq
    from edgekit.converters.ort_mixed import float_outputs, noise, run

    torch.manual_seed(0)
    first, second = torch.nn.Conv2d(1, 8, 1), torch.nn.Conv2d(8, 4, 1)
    with torch.no_grad():
        first.weight.fill_(0.01)
        first.weight[0] = 50.0
        first.bias.fill_(0.1)
        first.bias[0] = 0.0
    model = torch.nn.Sequential(first, torch.nn.ReLU(), second).eval()
    samples = [{"x": np.random.default_rng(i).random((1, 1, 8, 8)).astype(np.float32)} for i in range(16)]
    torch.onnx.export(model, (torch.from_numpy(samples[0]["x"]),), tmp_path / "f.onnx", input_names=["x"],
                      dynamo=True, external_data=False)
    pre = tmp_path / "pre.onnx"
    quant_pre_process(str(tmp_path / "f.onnx"), str(pre), skip_symbolic_shape=True)
    q = static_qdq(pre, tmp_path / "q.onnx", samples)
    float_outputs(q)
    correct_qdq(q, str(pre), samples)
    held_out = [{"x": np.random.default_rng(100 + i).random((1, 1, 8, 8)).astype(np.float32)} for i in range(8)]
    ref_h = run(str(pre), held_out)
    analytical = noise(ref_h, run(q, held_out))
    report = correct_qdq_sequential(q, str(pre), samples)
    assert report["layers"] == report["of"] == 2 and "stopped" not in report, report
    assert noise(ref_h, run(q, held_out)) < 0.3 * analytical, (analytical, noise(ref_h, run(q, held_out)))
    # a budget of 0 s corrects nothing and says so
    fresh = static_qdq(pre, tmp_path / "q2.onnx", samples)
    stopped = correct_qdq_sequential(fresh, str(pre), samples, budget_s=0.0)
    assert stopped["layers"] == 0 and "stopped" in stopped
