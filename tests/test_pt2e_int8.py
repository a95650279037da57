"""PT2E static INT8 (LiteRT and ExecuTorch) on a ReLU6 network: the clamp is quantized after
ReLU6, biases are corrected, and both mobile runtimes run the result within tolerance."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import edgekit

pytestmark = [pytest.mark.litert, pytest.mark.executorch]

GALLERY = Path(__file__).parent / "gallery" / "awkward.py"


def _relu6():
    spec = importlib.util.spec_from_file_location("awkward", GALLERY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.relu6()


def _samples(n, seed):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(n)]


def test_relu6_is_quantized_after_the_clamp_and_biases_are_corrected(monkeypatch):
    """Where the observers sit (each ReLU6 output gets its own [0, 6] range; the conv before it none),
    and what the two fixes do to the held-out worst-sample cosine, with the same model, calibration
    and quantizer (a check that fails without them)."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from edgekit.converters import bias_correction, pt2e
    from edgekit.converters.executorch import _quantizer

    model, example = _relu6()
    calib, held_out = _samples(32, 0), _samples(16, 1)
    exported = torch.export.export(model, (torch.from_numpy(example["x"]),)).module()
    prepared = prepare_pt2e(exported, pt2e.float_only(_quantizer(False)))
    for s in calib:
        prepared(torch.from_numpy(s["x"]))
    clamps = [n for n in prepared.graph.nodes if n.op == "call_function" and "hardtanh" in str(n.target)]
    assert len(clamps) == 2
    for clamp in clamps:
        conv = clamp.args[0]
        assert "conv" in str(conv.target) and conv.op == "call_function"  # read directly: no observer between
        (obs,) = [u for u in clamp.users if u.op == "call_module"]
        observer = prepared.get_submodule(obs.target)
        assert float(observer.min_val) >= 0.0 and float(observer.max_val) <= 6.0

    def held_out_cosine():
        q, _, info = pt2e.quantize(model, example, calib, _quantizer, cosine_min=0.0)
        return pt2e.cosine(pt2e._outputs(model, held_out), pt2e._outputs(q, held_out)), info

    fixed, info = held_out_cosine()
    assert info["mode"] == "static" and info["bias_correction"]["layers"] == 3
    monkeypatch.setattr(bias_correction, "correct_pt2e", lambda *a, **k: {"layers": 0})
    monkeypatch.setattr(pt2e, "_quantize_after_clamp", lambda model: 0)
    neither, _ = held_out_cosine()
    print(f"held-out worst cosine: with both fixes {fixed:.6f}, without {neither:.6f}")
    assert fixed >= 0.99 and 1 - neither > 1.5 * (1 - fixed), (fixed, neither)


@pytest.mark.slow
def test_relu6_static_int8_runs_on_litert_and_executorch(tmp_path):
    calib = tmp_path / "calib.npy"
    np.save(calib, np.stack([s["x"][0] for s in _samples(32, 0)]))
    p = edgekit("compile", "--model", f"{GALLERY}:relu6", "--target", "android", "--precision", "int8",
                "--calibration", calib, "--out", tmp_path / "b")
    arts = {a["id"]: a for a in json.loads((tmp_path / "b" / "manifest.json").read_text())["artifacts"]}
    for aid in ("litert-int8", "executorch-int8"):
        a = arts[aid]
        q = a["converter"]["quantization"]
        assert q["mode"] == "static" and q["bias_correction"]["layers"] == 3, (aid, q)
        assert a["verification"]["status"] == "passed", (aid, a["verification"].get("reason"), p.stderr[-2000:])
        assert min(m["cosine_min_sample"] for m in a["verification"]["metrics"].values()) >= 0.99


@pytest.mark.slow
def test_litert_mixed_precision_repairs_the_outlier_and_explain_names_the_layer(tmp_path):
    """awkward.py:outlier (one activation channel 300x the others): static INT8 misses on
    calibration; LiteRT's mixed-precision search keeps the layer reading the outlier in float and
    meets the tolerance on held-out data. ExecuTorch says why it has no mixed precision."""
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(3).standard_normal((32, 3, 8, 8)).astype(np.float32))
    edgekit("compile", "--model", f"{GALLERY}:outlier", "--target", "android", "--precision", "int8",
            "--calibration", calib, "--out", tmp_path / "b")
    arts = {a["id"]: a for a in json.loads((tmp_path / "b" / "manifest.json").read_text())["artifacts"]}
    lt = arts["litert-int8"]
    q = lt["converter"]["quantization"]
    assert q["static_cosine_on_calibration"] < 0.99 and q["mode"] == "static, mixed precision", q
    mp = q["mixed_precision"]
    assert mp["met"] and [r["module"] for r in mp["float_layers"]] == ["conv2 (Conv2d)"] and mp["layers"] == 3
    assert lt["verification"]["status"] == "passed"
    assert min(m["cosine_min_sample"] for m in lt["verification"]["metrics"].values()) >= 0.99
    et = arts["executorch-int8"]["converter"]["quantization"]
    assert "not for ExecuTorch" in et["mixed_precision_skipped"] and et["mode"] == "static"
    ex = edgekit("explain", tmp_path / "b", "--artifact", "litert-int8")
    assert "1 of 3 quantized layers kept in float" in ex.stdout and "conv2 (Conv2d)" in ex.stdout, ex.stdout
