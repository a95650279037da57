"""Runtime fallback under real faults: real artifacts, real runtimes, each fault injected for real.

The digits bundle holds three verified artifacts: ONNX Runtime (fused), ONNX Runtime (plain
ONNX ops) and TorchScript lite. Faults: a corrupted primary file; ONNX Runtime not installed; a
primary whose graph returns NaN, raises, or is slow for some inputs (graph surgery on the real
ONNX file, with the manifest's hash updated, i.e. a defect that slipped past verification);
a primary whose self-test fails at load.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit.fallback import ArtifactFailed
from edgekit.selftest import selftest_feeds

pytestmark = [pytest.mark.onnxruntime, pytest.mark.torchscript_lite]

PRIMARY, PLAIN, LITE = "onnxruntime-fp32", "onnxruntime-fp32-plain", "torchscript-lite-fp32"


@pytest.fixture
def bundle(digits_bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(digits_bundle, out)
    return out


def _selftest(b):
    from edgekit.manifest import Manifest

    return selftest_feeds(b, Manifest.read(b))


def _rewrite_primary(b, add_nodes):
    """Splice nodes after the primary's output `logits` and re-record its hash in the manifest."""
    m = json.loads((b / "manifest.json").read_text())
    art = next(a for a in m["artifacts"] if a["id"] == PRIMARY)
    path = b / art["path"]
    model = onnx.load(str(path))
    g = model.graph
    for n in g.node:
        n.output[:] = ["logits_orig" if o == "logits" else o for o in n.output]
    nodes, inits = add_nodes()
    g.node.extend(nodes)
    g.initializer.extend(inits)
    onnx.save(model, str(path))
    data = path.read_bytes()
    art["sha256"], art["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (b / "manifest.json").write_text(json.dumps(m, indent=2))


def _c(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def test_healthy_bundle_serves_from_primary(bundle):
    p = edgekit.load(bundle)
    ins, refs = _selftest(bundle)
    np.testing.assert_allclose(p.predict(ins[0])["logits"], refs[0]["logits"], atol=1e-4)
    assert p.active == PRIMARY and p.counters["switches"] == 0


def test_corrupted_primary_falls_back_at_load(bundle):
    f = bundle / "artifacts" / f"{PRIMARY}.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    p = edgekit.load(bundle)
    assert p.active == PLAIN
    assert any(e["from"] == PRIMARY and "sha256" in e["reason"] for e in p.events)
    ins, refs = _selftest(bundle)
    np.testing.assert_allclose(p.predict(ins[1])["logits"], refs[1]["logits"], atol=1e-4)
    with pytest.raises(ArtifactFailed, match="sha256"):
        edgekit.load(bundle, strict=True)


def test_primary_runtime_not_installed_falls_back_to_another_runtime(bundle):
    code = textwrap.dedent(f'''
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "onnxruntime":
                    raise ImportError("not installed on this device")
        sys.meta_path.insert(0, Block())
        import numpy as np, edgekit
        from edgekit.selftest import selftest_feeds
        p = edgekit.load({str(bundle)!r})
        ins, refs = selftest_feeds({str(bundle)!r}, p.manifest)
        err = float(np.abs(p.predict(ins[0])["logits"] - refs[0]["logits"]).max())
        print(p.active, err, [e["reason"] for e in p.events if e["to"] is None][0])
    ''')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    active, err, reason = r.stdout.split(" ", 2)
    assert active == LITE and float(err) < 1e-4
    assert "onnxruntime is not installed" in reason and "pip install" in reason


def test_primary_returning_nan_for_some_inputs_falls_back_per_request(bundle):
    # NaN only when the input leaves the digits' range (max pixel > 5): self-test passes at load.
    _rewrite_primary(bundle, lambda: ([
        helper.make_node("ReduceMax", ["image"], ["mx"], keepdims=0),
        helper.make_node("Sub", ["five", "mx"], ["d"]),
        helper.make_node("Sqrt", ["d"], ["s"]),  # NaN for negative
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["logits_orig", "z"], ["logits"]),
    ], [_c("five", 5.0), _c("zero", 0.0)]))
    p = edgekit.load(bundle)
    assert p.active == PRIMARY
    x = np.full((1, 1, 8, 8), 9.0, np.float32)
    y = p.predict(x)["logits"]
    assert np.all(np.isfinite(y)) and p.active == PLAIN
    np.testing.assert_allclose(y, edgekit.load(bundle, artifact=PLAIN).predict(x)["logits"], atol=1e-5)
    assert any("non-finite" in e["reason"] for e in p.events)


def test_primary_raising_mid_run_falls_back_then_recovers(bundle):
    # Gather index 1000 (out of range: ORT raises) only when max pixel > 5.
    _rewrite_primary(bundle, lambda: ([
        helper.make_node("ReduceMax", ["image"], ["mx"], keepdims=0),
        helper.make_node("Greater", ["mx", "five"], ["big"]),
        helper.make_node("Cast", ["big"], ["bigf"], to=TensorProto.INT64),
        helper.make_node("Mul", ["bigf", "k"], ["idx"]),
        helper.make_node("Gather", ["table", "idx"], ["g"]),
        helper.make_node("Add", ["logits_orig", "g"], ["logits"]),
    ], [_c("five", 5.0), numpy_helper.from_array(np.array(1000, np.int64), "k"), _c("table", [0.0])]))
    p = edgekit.load(bundle, cooldown_calls=3)
    ins, refs = _selftest(bundle)
    assert p.active == PRIMARY
    y = p.predict(np.full((1, 1, 8, 8), 9.0, np.float32))["logits"]  # the primary raises on this one
    assert p.active == PLAIN and np.all(np.isfinite(y))
    assert any(e["from"] == PRIMARY and e["reason"].startswith("raised") for e in p.events)
    for x, r in zip(ins[:2], refs[:2]):  # sticks for the cooldown (3 calls, the rescued one included)
        np.testing.assert_allclose(p.predict(x)["logits"], r["logits"], atol=1e-4)
        assert p.active == PLAIN
    p.predict(ins[3])  # cooldown over: the primary is re-probed, passes its self-test, is restored
    assert p.active == PRIMARY and p.events[-1]["reason"] == "re-probe passed: restored"


@pytest.mark.timing
def test_slow_primary_is_replaced_over_a_window(bundle):
    # Real extra work on every call: 8 chained 256x256 matmuls on an input-derived matrix.
    def nodes():
        ns = [helper.make_node("ReduceMean", ["image"], ["m"], keepdims=0),
              helper.make_node("Mul", ["ones", "m"], ["a0"])]
        for i in range(8):
            ns += [helper.make_node("MatMul", [f"a{i}", "w"], [f"b{i}"]), helper.make_node("Tanh", [f"b{i}"], [f"a{i + 1}"])]
        ns += [helper.make_node("ReduceMean", ["a8"], ["r"], keepdims=0), helper.make_node("Mul", ["r", "zero"], ["z"]),
               helper.make_node("Add", ["logits_orig", "z"], ["logits"])]
        return ns, [_c("ones", np.ones((256, 256))), _c("w", np.full((256, 256), 1e-3)), _c("zero", 0.0)]

    _rewrite_primary(bundle, nodes)
    slow = edgekit.load(bundle, artifact=PRIMARY, threads=1)
    fast = edgekit.load(bundle, artifact=PLAIN, threads=1)
    ins, refs = _selftest(bundle)

    def med(pred):
        import time

        ts = []
        for _ in range(15):
            t = time.perf_counter()
            pred.predict(ins[0])
            ts.append(time.perf_counter() - t)
        return 1e3 * float(np.median(ts))

    slow_ms, fast_ms = med(slow), med(fast)
    assert slow_ms > 3 * fast_ms, (slow_ms, fast_ms)  # the injected work is real
    budget = float(np.sqrt(slow_ms * fast_ms))  # between the two, far from both
    p = edgekit.load(bundle, threads=1, latency_budget_ms=budget)
    for i in range(25):
        np.testing.assert_allclose(p.predict(ins[i % 4])["logits"], refs[i % 4]["logits"], atol=1e-4)
    assert p.active == PLAIN
    assert any(e["from"] == PRIMARY and "too slow" in e["reason"] for e in p.events)


def test_primary_failing_its_selftest_is_skipped_at_load(bundle):
    _rewrite_primary(bundle, lambda: ([helper.make_node("Neg", ["logits_orig"], ["logits"])], []))
    p = edgekit.load(bundle)
    assert p.active == PLAIN
    assert any("self-test failed" in e["reason"] for e in p.events if e["from"] == PRIMARY)


def test_different_smaller_fallback_model_takes_over(tmp_path):
    """compile --fallback-model: a smaller model with the same inputs/outputs, verified against its
    own reference and carrying its own self-test; it serves when every main artifact is damaged."""
    import torch

    from conftest import edgekit as run

    small = tmp_path / "small.py"
    small.write_text("import torch\n"
                     "def make():\n"
                     "    torch.manual_seed(1)\n"
                     "    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()\n"
                     "    return {'model': net, 'example_inputs': torch.rand(1, 1, 8, 8), 'input_names': ['image'],\n"
                     "            'output_names': ['logits'], 'task': 'classification'}\n")
    out = tmp_path / "b"
    run("compile", "--target", "cpu", "--out", out, "--fallback-model", f"{small}:make", check=True)
    m = json.loads((out / "manifest.json").read_text())
    fb = m["artifacts"][-1]
    assert fb["id"] == "onnxruntime-fp32-fallback-model" and fb["role"] == "fallback"
    assert fb["model"]["source"] == f"{small}:make" and fb["verification"]["status"] == "passed"
    assert fb["selftest"]["path"] != m["selftest"]["path"]
    for a in m["artifacts"][:-1]:  # damage every artifact of the main model
        f = out / a["path"]
        f.write_bytes(f.read_bytes()[:-7] + b"garbage")
    p = edgekit.load(out)
    assert p.active == "onnxruntime-fp32-fallback-model"
    assert sum(1 for e in p.events if e["to"] is None and "sha256" in e["reason"]) == 3
    from conftest import import_file

    net = import_file(small).make()["model"]
    x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(p.predict(x)["logits"], net(torch.from_numpy(x)).numpy(), atol=1e-5)

    wrong = tmp_path / "wrong.py"
    wrong.write_text("import torch\n"
                     "def make():\n"
                     "    return torch.nn.Linear(3, 2), torch.randn(1, 3)\n")
    p2 = run("compile", "--target", "cpu", "--out", tmp_path / "c", "--fallback-model", f"{wrong}:make")
    assert p2.returncode == 2 and "same inputs" in p2.stderr
