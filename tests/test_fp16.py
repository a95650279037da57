"""FP16 for ONNX Runtime (converters/ort_fp16.py), LiteRT and ExecuTorch: float16 weights in a file
about half the size, float16 arithmetic where the runtime has it, verified on the real runtimes.
(ONNX Runtime FP16 inside `--precision auto` on the cpu target: test_mixed_precision.py.)"""
import json

import numpy as np
import pytest

from conftest import edgekit

pytestmark = [pytest.mark.onnxruntime]


def _graph(path, ops: str, n: int = 256):
    """x[1, n] -> Clip -> MatMul W[n, n] (y[1, n]) or Mul W[n, n] (broadcast: y[n, n])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, n)).astype(np.float32)
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
             helper.make_node("MatMul" if ops == "matmul" else "Mul", ["c", "w"], ["y"])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(-2, np.float32), "lo"),
             numpy_helper.from_array(np.array(2, np.float32), "hi")]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1 if ops == "matmul" else n, n])
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])], [y], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _run(path, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("ops", ["matmul", "elementwise"])
def test_ort_fp16_halves_the_weights_and_keeps_the_answers(tmp_path, ops):
    import onnx

    from edgekit.converters.ort_kernels import cpu_kernels
    from edgekit.converters.ort_fp16 import _float16_ops, convert

    src, dst = tmp_path / "fp32.onnx", tmp_path / "fp16.onnx"
    _graph(src, ops)
    info = convert(src, dst)
    assert dst.stat().st_size < 0.55 * src.stat().st_size
    big = [i for i in onnx.load(str(dst)).graph.initializer if np.prod(i.dims) >= 16]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    x = np.random.default_rng(1).standard_normal((1, 256)).astype(np.float32) * 3
    ref, out = _run(src, x), _run(dst, x)
    assert out.dtype == np.float32 and out.shape == ref.shape  # inputs and outputs stay float32
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert 0 < rel < 2e-3, rel  # float16 weights: a real, small change
    # which ops computed in float16 is this ONNX Runtime's registry's call, and the info says so
    have = _float16_ops(cpu_kernels()[0])
    matrix = "MatMul" if ops == "matmul" else "Mul"
    if ("ai.onnx", matrix) in have or ops == "elementwise" and ("ai.onnx", "Clip") in have:
        assert info["compute"]["fp16_nodes"] >= 1
    if ops == "matmul" and ("ai.onnx", "MatMul") not in have:  # x86-64 builds: float32 arithmetic
        assert info["compute"]["fp16_nodes"] == 0 and "MatMul" in info["compute"]["why_fp32"]


@pytest.mark.slow
@pytest.mark.litert
@pytest.mark.executorch
def test_android_fp16_litert_and_executorch_verified(tmp_path):
    """digits (a one-channel image: the ExecuTorch input cast that needed a flat view) in float16 on
    LiteRT and ExecuTorch, each verified on its runtime against the FP32 reference."""
    out = tmp_path / "b"
    p = edgekit("compile", "--model", "builtin:digits", "--target", "android", "--precision", "fp16", "--out", out)
    assert p.returncode == 0, p.stderr
    m = json.loads((out / "manifest.json").read_text())
    arts = {a["id"]: a for a in m["artifacts"]}
    assert set(arts) == {"litert-fp16", "executorch-fp16"}
    fp32_weight_bytes = 38_282 * 4  # digits' parameters as float32
    for a in arts.values():
        v = a["verification"]
        assert v["status"] == "passed" and v["where"] == "host-runtime", v
        assert a["size_bytes"] < 0.65 * fp32_weight_bytes, (a["id"], a["size_bytes"])
        assert a["converter"]["fp16"]["io"] == "float32"
    assert [arts[i]["converter"]["fp16"]["arithmetic"] for i in ("litert-fp16", "executorch-fp16")] == ["fp32", "fp16"]
    et = arts["executorch-fp16"]["verification"]["metrics"]["logits"]
    assert et["max_abs"] > 1e-4 and et["cosine"] >= 0.999  # float16 arithmetic: visible, within tolerance
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(out / arts["litert-fp16"]["path"]))
    assert sum(d["dtype"] == np.float16 for d in it.get_tensor_details()) >= 4  # the weights
    assert [d["dtype"] for d in it.get_input_details()] == [np.float32]
    ex = edgekit("explain", out, "--artifact", "executorch-fp16")
    assert ex.returncode == 0 and "arithmetic: float16" in ex.stdout and "held-out verification" in ex.stdout
