"""The default job end to end on the real ONNX Runtime: compile, verify, load, predict."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

import edgekit
from edgekit.errors import BundleError, InputError

from conftest import edgekit as run

pytestmark = [pytest.mark.onnxruntime, pytest.mark.torchscript_lite]


def test_manifest_lists_verified_artifact_with_matching_hashes(digits_bundle):
    m = json.loads((digits_bundle / "manifest.json").read_text())
    assert m["complete"] is True and m["schema"] == "edgekit.bundle/1"
    a, plain, lite = m["artifacts"]
    assert [x["role"] for x in m["artifacts"]] == ["primary", "fallback", "fallback"]
    assert (plain["id"], plain["converter"]["fusions"]) == ("onnxruntime-fp32-plain", {})
    assert (lite["runtime"], lite["format"], lite["verification"]["status"]) == ("torchscript-lite", "torchscript", "passed")
    assert lite["converter"]["optimize_for_mobile"] is False and "XNNPACK" in lite["converter"]["optimize_for_mobile_error"]
    for key in ("role", "format", "runtime", "precision", "path", "sha256", "size_bytes", "inputs", "outputs",
                "verification", "toolchain"):
        assert key in a
    assert (a["role"], a["format"], a["runtime"], a["precision"]) == ("primary", "onnx", "onnxruntime", "fp32")
    data = (digits_bundle / a["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == a["sha256"] and len(data) == a["size_bytes"]
    assert a["inputs"] == [{"name": "image", "shape": [1, 1, 8, 8], "dtype": "float32"}]
    assert a["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    v = a["verification"]
    assert v["status"] == "passed" and v["samples"] == 397 and v["where"] == "host-runtime"
    met = v["metrics"]["logits"]
    assert met["cosine"] >= 0.9999 and met["top1_agreement"] >= 0.99 and met["nonfinite"] == 0
    assert met["max_abs"] < 1e-3 and met["snr_db"] > 60
    # A real accuracy on held-out digits, and the artifact keeps it.
    assert m["model"]["source_accuracy"] > 0.95
    assert abs(v["accuracy"] - m["model"]["source_accuracy"]) <= 0.01
    assert a["toolchain"]["onnxruntime"] and a["toolchain"]["torch"].startswith("2.13.0")


def test_load_predict_matches_selftest_reference(digits_bundle):
    from edgekit.samples import load_samples

    p = edgekit.load(digits_bundle)
    assert p.active == "onnxruntime-fp32"
    ins, refs, _ = load_samples(digits_bundle / "selftest.npz")
    for x, ref in zip(ins, refs):
        out = p.predict(x)["logits"]
        np.testing.assert_allclose(out, ref["logits"], atol=1e-4)
    # positional and single-array forms work too
    np.testing.assert_allclose(p.predict(ins[0]["image"])["logits"], refs[0]["logits"], atol=1e-4)


@pytest.mark.parametrize("bad, msg", [
    ({"image": np.zeros((1, 1, 8, 9), np.float32)}, r"shape \[1, 1, 8, 9\], expected \[1, 1, 8, 8\]"),
    ({"image": np.zeros((1, 1, 8, 8), np.float64)}, "dtype float64, expected float32"),
    ({"img": np.zeros((1, 1, 8, 8), np.float32)}, r"missing \['image'\], unexpected \['img'\]"),
    ([np.zeros((1, 1, 8, 8), np.float32)] * 2, "got 2 inputs, the model takes 1"),
])
def test_wrong_inputs_say_what_was_expected(digits_bundle, bad, msg):
    p = edgekit.load(digits_bundle)
    with pytest.raises(InputError, match=msg):
        p.predict(bad)


def test_verify_command_passes_then_catches_corruption(digits_bundle, tmp_path):
    ok = run("verify", digits_bundle)
    assert ok.returncode == 0 and "passed" in ok.stdout, ok.stderr
    broken = tmp_path / "broken"
    shutil.copytree(digits_bundle, broken)
    art = broken / "artifacts" / "onnxruntime-fp32.onnx"
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.write_bytes(bytes(data))
    p = run("verify", broken)
    assert p.returncode == 8 and "does not match its sha256" in p.stderr
    with pytest.raises(BundleError, match="sha256"):
        edgekit.load(broken, artifact="onnxruntime-fp32-plain")  # one named artifact: whole bundle checked
    from edgekit.errors import ArtifactFailed

    with pytest.raises(ArtifactFailed, match="sha256"):
        edgekit.load(broken, strict=True)
    assert edgekit.load(broken).active != art.stem  # the default predictor falls back (tests/test_fallback.py)
    art.unlink()
    with pytest.raises(BundleError, match="missing"):
        edgekit.load(broken, artifact="onnxruntime-fp32-plain")


def test_recompile_reuses_cached_training_and_is_deterministic(digits_bundle, tmp_path):
    out = tmp_path / "again"
    run("compile", "--target", "cpu", "--out", out, check=True)
    a = json.loads((digits_bundle / "manifest.json").read_text())
    b = json.loads((out / "manifest.json").read_text())
    assert a["model"]["sha256"] == b["model"]["sha256"]  # same cached weights
    for x, y in zip(a["artifacts"], b["artifacts"]):
        assert x["verification"]["metrics"] == y["verification"]["metrics"]
