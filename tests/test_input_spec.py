"""`--input NAME:SHAPE[:DTYPE]`: symbolic dims are never silently set to 1 (issue 23, first part).

A small conv net exported to ONNX with symbolic H and W, made here: without `--input` the compile
stops with exit 2 naming the dims; with it, the cpu bundle is compiled, verified and served at
that shape, and the manifest records the spec."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edgekit
from conftest import edgekit as run
from edgekit.errors import InputError, UsageError
from edgekit.sources.input_spec import parse_input

pytestmark = [pytest.mark.onnxruntime]


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.head = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dyn") / "dyn.onnx"
    h, w = torch.export.Dim("H", min=8, max=512), torch.export.Dim("W", min=8, max=512)
    torch.onnx.export(Net().eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=True, external_data=False,
                      dynamic_shapes={"x": {2: h, 3: w}}, input_names=["x"])
    return path


def test_parse_input_forms():
    assert parse_input("image:1x3x224x224").shape() == (1, 3, 224, 224)
    s = parse_input("input_ids:1x[1..128]:int64")
    assert s.dims == (1, (1, 128)) and s.dtype == "int64" and not s.static and s.text() == "input_ids:1x[1..128]:int64"
    for bad, says in [("image", "NAME:SHAPE"), ("image:1xAx3", "not a size"), ("image:0x3", "at least 1"),
                      ("image:1x[5..2]", "MIN <= MAX"), ("image:1x3:floa32", 'did you mean "float32"')]:
        with pytest.raises(UsageError, match=said(says)):
            parse_input(bad)


def said(text: str) -> str:
    import re

    return re.escape(text)


def test_symbolic_dims_without_input_stop_with_exit_2_naming_them(dynamic_onnx, tmp_path):
    p = run("compile", "--model", dynamic_onnx, "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "symbolic dims 'H', 'W' (shape [1, 3, H, W]); edgekit never invents a size" in p.stderr
    assert "--input x:1x3xHxW" in p.stderr and not (tmp_path / "b").exists()
    for spec, says in [("y:1x3x8x8", "has no input 'y'"), ("x:2x3x8x8", "dim 0 of 'x' is fixed at 1"),
                       ("x:1x[1..3]x8x8", "dim 1 of 'x' is fixed at 3 in the model ([1, 3, H, W]), so it cannot vary"), ("x:1x3x8x8:int64", "is float32")]:
        p = run("compile", "--model", dynamic_onnx, "--target", "cpu", "--input", spec, "--out", tmp_path / "b")
        assert p.returncode == 2 and says in p.stderr, (spec, p.stderr)
    p = run("compile", "--target", "cpu", "--input", "image:1x1x9x8", "--out", tmp_path / "b")
    assert p.returncode == 2 and "a PyTorch source's shapes come from its example" in p.stderr


def test_with_input_the_model_compiles_verifies_and_serves_at_that_shape(dynamic_onnx, tmp_path):
    out = tmp_path / "b"
    p = run("compile", "--model", dynamic_onnx, "--target", "cpu", "--input", "x:1x3x48x64", "--out", out)
    assert p.returncode in (0, 12), p.stderr  # 12 would only mean a torch-only candidate could not take ONNX
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["inputs"] == [{"name": "x", "shape": [1, 3, 48, 64], "dtype": "float32"}]
    assert m["model"]["input_specs"] == ["x:1x3x48x64"]
    ort = [a for a in m["artifacts"] if a["runtime"] == "onnxruntime"]
    assert ort and all(a["verification"]["status"] == "passed" and a["inputs"][0]["shape"] == [1, 3, 48, 64]
                       for a in ort)
    pred = edgekit.load(out)
    y = pred.predict(np.random.default_rng(1).standard_normal((1, 3, 48, 64)).astype(np.float32))
    assert next(iter(y.values())).shape == (1, 4)
    with pytest.raises(InputError, match=r"expected \[1, 3, 48, 64\]"):
        pred.predict(np.zeros((1, 3, 32, 32), np.float32))


def test_integer_inputs_of_an_onnx_model_need_real_values(tmp_path):
    """Token ids (or a sample rate) decide what a model does: never invented, taken from --verify-data."""
    import torch

    class Emb(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = torch.nn.Embedding(50, 8), torch.nn.Linear(8, 3)

        def forward(self, ids):
            return self.head(self.emb(ids).mean(1))

    torch.manual_seed(0)
    path = tmp_path / "ids.onnx"
    torch.onnx.export(Emb().eval(), (torch.randint(0, 50, (1, 12)),), str(path), dynamo=True, external_data=False,
                      input_names=["ids"])
    p = run("compile", "--model", path, "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode == 2 and "never invents them" in p.stderr and "--verify-data FILE.npz" in p.stderr, p.stderr
    ids = np.random.default_rng(3).integers(0, 50, (24, 1, 12)).astype(np.int64)
    np.savez(tmp_path / "real.npz", ids=ids)
    p = run("compile", "--model", path, "--target", "cpu", "--out", tmp_path / "b", "--verify-data", tmp_path / "real.npz")
    assert p.returncode in (0, 12), p.stderr
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m["model"]["verify_data"] == f"--verify-data {tmp_path / 'real.npz'} (24 samples)"
    assert m["model"]["verify_samples"] == 24


def test_a_control_input_gets_the_fixed_value_the_user_names(tmp_path):
    """A sample-rate-like int input picks the model's branch: `--input sr=16000` fixes it in every
    sample, and nothing is invented for it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        [helper.make_node("Equal", ["sr", "k16000"], ["is16k"]), helper.make_node("Mul", ["x", "two"], ["a"]),
         helper.make_node("Neg", ["x"], ["b"]), helper.make_node("Where", ["is16k", "a", "b"], ["y"])], "vad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array([16000], np.int64), "k16000"),
         numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    path = tmp_path / "vad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    p = run("compile", "--model", path, "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode == 2 and "never invents them" in p.stderr and "--input sr=VALUE" in p.stderr, p.stderr
    p = run("compile", "--model", path, "--target", "cpu", "--input", "sr=abc", "--out", tmp_path / "b")
    assert p.returncode == 2 and "'abc' is not a number" in p.stderr
    p = run("compile", "--model", path, "--target", "cpu", "--input", "sr=16000", "--out", tmp_path / "b")
    assert p.returncode in (0, 12), p.stderr
    pred = edgekit.load(tmp_path / "b")
    from edgekit.selftest import selftest_feeds

    ins, refs = selftest_feeds(tmp_path / "b", pred.manifest)
    assert all(int(s["sr"][0]) == 16000 for s in ins)  # every verification sample took the 16 kHz branch
    np.testing.assert_allclose(refs[0]["y"], 2 * ins[0]["x"], rtol=1e-6)
