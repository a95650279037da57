"""Every --model kind compiles and verifies: file.py:factory, package.module:factory, .pt2, .onnx."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgekit

from conftest import edgekit as run
from conftest import import_file

pytestmark = [pytest.mark.onnxruntime]


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def test_factory_file_with_stride0_float64_example(tiny_factory, tmp_path):
    out = tmp_path / "tiny"
    run("compile", "--model", f"{tiny_factory}:make", "--target", "cpu", "--out", out, check=True)
    m = _manifest(out)
    a = m["artifacts"][0]
    # float64 numpy view with a stride-0 batch axis became an owned float32 input
    assert a["inputs"] == [{"name": "pixels", "shape": [1, 3, 6, 6], "dtype": "float32"}]
    assert a["outputs"][0]["name"] == "scores"
    assert a["verification"]["status"] == "passed"
    assert m["model"]["verify_data"] == "random"  # no held-out data given: said so, not hidden
    assert a["verification"]["metrics"]["scores"]["cosine"] >= 0.9999


def test_factory_tuple_form_and_weights_only_state_dict(tiny_factory, tmp_path):
    m, x = import_file(tiny_factory).make_tuple()
    torch.manual_seed(1)
    for p_ in m.parameters():
        torch.nn.init.normal_(p_)
    weights = tmp_path / "w.pt"
    torch.save(m.state_dict(), weights)
    out = tmp_path / "tuple"
    run("compile", "--model", f"{tiny_factory}:make_tuple", "--weights", weights, "--target", "cpu",
        "--out", out, check=True)
    pred = edgekit.load(out).predict(x.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(pred["output"], m(x).numpy(), rtol=1e-4, atol=1e-4)  # the loaded weights


def test_pt2_archive_source(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    ep = torch.export.export(net.eval(), (torch.randn(2, 8),))
    path = tmp_path / "net.pt2"
    torch.export.save(ep, str(path))
    out = tmp_path / "pt2"
    run("compile", "--model", path, "--target", "cpu", "--out", out, check=True)
    a = _manifest(out)["artifacts"][0]
    assert a["inputs"][0]["shape"] == [2, 8] and a["verification"]["status"] == "passed"


def test_onnx_file_source(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()).eval()
    path = tmp_path / "conv.onnx"
    torch.onnx.export(net, (torch.randn(1, 1, 5, 5),), str(path), dynamo=True, external_data=False)
    out = tmp_path / "onnx"
    run("compile", "--model", path, "--target", "cpu", "--out", out, check=True)
    m = _manifest(out)
    assert "graph optimizations off" in m["model"]["reference"]
    assert m["artifacts"][0]["verification"]["status"] == "passed"


def test_package_module_factory(tmp_path, tiny_factory):
    pkg = tmp_path / "site" / "mymodels"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(tiny_factory.read_text())
    out = tmp_path / "pkg"
    import os

    run("compile", "--model", "mymodels.nets:make", "--target", "cpu", "--out", out, check=True,
        env={"PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert _manifest(out)["artifacts"][0]["verification"]["status"] == "passed"


def test_model_with_python_side_state_is_reported_as_a_stateful_reference(tmp_path):
    """A model with Python-side state answers the same input differently on every call. The
    reference is run twice on one input before anything is compared with it, so this is reported
    as the reference's own failure (exit 14, with advice), not blamed on an artifact."""
    f = tmp_path / "drift.py"
    f.write_text(
        "import torch\n"
        "class Drift(torch.nn.Module):\n"
        "    calls = 0\n"
        "    def forward(self, x):\n"
        "        Drift.calls += 1\n"
        "        return x + float(Drift.calls)\n"
        "def make():\n"
        "    return Drift(), torch.randn(1, 16)\n")
    out = tmp_path / "drift"
    p = run("compile", "--model", f"{f}:make", "--target", "cpu", "--out", out)
    assert p.returncode == 14 and "Traceback" not in p.stderr, (p.stdout, p.stderr)
    assert "gave different outputs for the same input on two calls" in p.stderr and "max difference 16" in p.stderr
    assert "make any state an explicit input and output" in p.stderr and not out.exists()


def test_reference_with_nan_is_the_references_failure_not_the_tool(tmp_path):
    f = tmp_path / "nan.py"
    f.write_text("import torch\n"
                 "class M(torch.nn.Module):\n"
                 "    def forward(self, x):\n"
                 "        return torch.log(x)\n"  # NaN for negative inputs, in eager and in ONNX alike
                 "def make():\n"
                 "    return M(), torch.randn(1, 8)\n")
    out = tmp_path / "nan"
    p = run("compile", "--model", f"{f}:make", "--target", "cpu", "--out", out)
    assert p.returncode == 14 and "Traceback" not in p.stderr, p.stderr
    assert "the reference (PyTorch eager) gives NaN or Inf in output(s) ['output']" in p.stderr
    assert "made up (random" in p.stderr  # the hint: these inputs were invented; give real ones


def test_factory_that_raises_is_a_model_source_error(tmp_path):
    f = tmp_path / "broken.py"
    f.write_text("def make():\n    raise RuntimeError('weights not found')\n")
    p = run("compile", "--model", f"{f}:make", "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode == 3 and "RuntimeError: weights not found" in p.stderr and "Traceback" not in p.stderr


def test_verification_inputs_overlapping_calibration_are_refused(tmp_path):
    f = tmp_path / "overlap.py"
    f.write_text("import torch\n"
                 "def make():\n"
                 "    xs = [torch.randn(1, 4) for _ in range(3)]\n"
                 "    return {'model': torch.nn.Linear(4, 2), 'example_inputs': xs[0],\n"
                 "            'verification_inputs': xs, 'calibration_inputs': xs[2:]}\n")
    p = run("compile", "--model", f"{f}:make", "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode == 3 and "also appear in the calibration data" in p.stderr


def test_primary_that_cannot_be_exported_gives_a_degraded_bundle(tmp_path):
    """Data-dependent control flow defeats torch.export (ONNX); TorchScript tracing still works.
    The bundle serves the verified fallback, says why, and the exit code says degraded."""
    f = tmp_path / "branchy.py"
    f.write_text("import torch\n"
                 "class Branchy(torch.nn.Module):\n"
                 "    def __init__(self):\n"
                 "        super().__init__()\n"
                 "        self.fc = torch.nn.Linear(8, 3)\n"
                 "    def forward(self, x):\n"
                 "        if x.abs().sum() >= 0:\n"
                 "            return self.fc(x)\n"
                 "        return -self.fc(x)\n"
                 "def make():\n"
                 "    torch.manual_seed(0)\n"
                 "    return Branchy().eval(), torch.randn(1, 8)\n")
    out = tmp_path / "br"
    p = run("compile", "--model", f"{f}:make", "--target", "cpu", "--out", out)
    assert p.returncode == 12, (p.stdout, p.stderr)
    assert "degraded" in p.stderr and "\x1b[" not in p.stderr
    m = _manifest(out)
    assert [a["id"] for a in m["artifacts"]] == ["torchscript-lite-fp32"]
    assert m["artifacts"][0]["role"] == "primary" and m["target"]["primary_choice"]["degraded"] is True
    assert {f_["id"] for f_ in m["failed_candidates"]} == {"onnxruntime-fp32", "onnxruntime-fp32-plain"}
    assert all("ONNX export failed" in f_["error"] for f_ in m["failed_candidates"])
    log = m["failed_candidates"][0]["hint"].split("full traceback in ")[-1]
    assert ".partial" not in log and (out / "logs" / "prepare.log").samefile(log)  # where the log is now
    x = np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)
    net, _ = import_file(f).make()
    with torch.no_grad():
        np.testing.assert_allclose(edgekit.load(out).predict(x)["output"], net(torch.from_numpy(x)).numpy(), atol=1e-5)
