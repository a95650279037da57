"""Mobile targets on their real runtimes: LiteRT interpreter, ExecuTorch, TorchScript lite; FP32 and INT8."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import edgekit
from edgekit.bundle import open_bundle

from conftest import MOBILE, digits_for, edgekit as run, needs

pytestmark = [needs(*MOBILE), pytest.mark.slow, pytest.mark.litert, pytest.mark.executorch, pytest.mark.torchscript_lite]


def _arts(bundle) -> dict:
    return {a["id"]: a for a in json.loads((bundle / "manifest.json").read_text())["artifacts"]}


def test_digits_android_every_runtime_and_precision_verified(digits_android):
    m = json.loads((digits_android / "manifest.json").read_text())
    arts = _arts(digits_android)
    assert list(arts) == ["litert-int8", "litert-fp32", "executorch-int8", "executorch-fp32", "torchscript-lite-fp32"]
    assert [a["role"] for a in arts.values()] == ["primary"] + ["fallback"] * 4
    assert {a["format"] for a in arts.values()} == {"tflite", "pte", "torchscript"}
    for a in arts.values():
        v, met = a["verification"], a["verification"]["metrics"]["logits"]
        assert v["status"] == "passed" and v["where"] == "host-runtime" and v["samples"] == 397, a["id"]
        if a["precision"] == "fp32":
            assert met["cosine"] >= 0.9999 and met["top1_agreement"] >= 0.99
        else:  # INT8 vs the FP32 source on held-out digits; and a real size cut
            assert met["top1_agreement"] >= 0.99 and met["cosine_min_sample"] >= 0.99
            fp32 = arts[a["id"].replace("int8", "fp32")]
            assert a["size_bytes"] <= 0.35 * fp32["size_bytes"], (a["id"], a["size_bytes"], fp32["size_bytes"])
            q = a["converter"]["quantization"]
            assert q["mode"] == "static" and q["calibration_samples"] == 64 and q["static_cosine_on_calibration"] > 0.99
            assert q["quantized_tensors"] >= 4  # 2 convs + 2 linears really quantized
            assert abs(v["accuracy"] - m["model"]["source_accuracy"]) <= 0.02
    assert m["model"]["calibration"]["samples"] == 200 and len(m["model"]["calibration"]["sha256"]) == 64
    # The LiteRT INT8 file takes and gives int8 tensors: the manifest records their scale/zero point.
    io = arts["litert-int8"]["converter"]["artifact_io"]
    assert io["inputs"][0]["dtype"] == "int8" and io["inputs"][0]["quantization"]["scale"] > 0
    # Delegation coverage: every op and FLOP of the digits CNN on XNNPACK, counted two independent ways
    # (LiteRT's delegate nodes, ExecuTorch's lowered subgraphs) that agree on the model's FLOPs.
    flops = set()
    for aid in ("litert-int8", "litert-fp32", "executorch-int8", "executorch-fp32"):
        cov = arts[aid]["converter"]["delegation"]
        assert cov["backend"] == "xnnpack" and cov["ops_share"] == 1.0 and cov["flops_share"] == 1.0, (aid, cov)
        assert cov["not_delegated"] == {} and cov["ops_delegated"] == cov["ops_total"] > 0
        flops.add(cov["flops_total"])
    assert len(flops) == 1 and flops.pop() > 500_000  # 2 convs + 2 linears: ~0.68 MFLOP
    assert m["target"]["min_delegated_flops_share"] == 0.9
    # A phone is not this host: the choice says so, and why.
    choice = m["target"]["primary_choice"]
    assert choice["measured_on_device"] is False and "is not the target device" in choice["why"]


def test_bench_and_verify_every_mobile_artifact(digits_android, tmp_path):
    out = tmp_path / "bench.json"
    run("bench", digits_android, "--all", "--json", out, "--min-runs", "20", "--min-time", "0.2", check=True)
    res = {r["artifact"]: r for r in json.loads(out.read_text())["results"]}
    assert set(res) == set(_arts(digits_android))
    for r in res.values():
        assert r["measured_on"] == "host (not the target device)" and r["latency_ms"]["p50"] > 0 and r["runs"] >= 20
        if r["runtime"] in ("litert", "executorch"):  # delegation coverage travels with the timings
            assert r["delegation"]["flops_share"] == 1.0, r
    p = run("verify", digits_android)
    assert p.returncode == 0, p.stderr
    for aid in _arts(digits_android):
        assert aid in p.stdout


def test_predictor_runs_int8_litert_with_float_inputs(digits_android):
    from edgekit.samples import load_samples

    p = edgekit.load(digits_android, artifact="litert-int8")
    ins, refs, _ = load_samples(digits_android / "selftest.npz")
    got = np.stack([p.predict(x)["logits"] for x in ins])
    ref = np.stack([r["logits"] for r in refs])
    assert got.dtype == np.float32 and (got.argmax(-1) == ref.argmax(-1)).all()
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()  # dequantized, not raw int8 codes


@pytest.mark.parametrize("threads", [1, 2])
def test_runtimes_take_a_thread_count(digits_android, threads):
    from edgekit.runtimes import open_runner

    m = open_bundle(digits_android)
    x = {"image": np.ones((1, 1, 8, 8), np.float32)}
    outs = []
    for a in m.artifacts:
        r = open_runner(a.runtime, digits_android / a.path, threads, a.inputs, a.outputs)
        outs.append(r.run(x)["logits"])
    for o in outs[1:]:
        assert np.argmax(o) == np.argmax(outs[1])


def _package(bundle, platform, out, *extra):
    p = run("package", bundle, "--for", platform, "--out", out, *extra)
    assert p.returncode == 0, p.stderr
    return json.loads((out / "model.json").read_text())


def _check(pkg_dir, *args):
    """The package's own checker, run from another folder with isolated Python (no edgekit on sys.path
    beyond the venv's site-packages; the script imports only numpy and the runtime)."""
    code = (pkg_dir / "check_model.py").read_text().split('"""', 2)[2]
    assert not re.search(r"^\s*(import|from)\s+edgekit", code, re.M)  # strings may name edgekit; imports may not
    return subprocess.run([sys.executable, "-I", str(pkg_dir / "check_model.py"), str(pkg_dir), *args],
                          capture_output=True, text=True, cwd="/", timeout=300)


def test_android_package_self_test_passes_from_files_alone(digits_android, tmp_path):
    pkg_dir = tmp_path / "app"
    pkg = _package(digits_android, "android", pkg_dir)
    assert [(x["id"], x["role"]) for x in pkg["models"]] == [("litert-int8", "primary"), ("litert-fp32", "fallback")]
    assert pkg["inputs"] == [{"name": "image", "shape": [1, 1, 8, 8], "dtype": "float32", "layout": "NCHW"}]
    assert pkg["preprocessing"]["scale"] == 0.0625 and pkg["model"]["labels"][:2] == ["0", "1"]
    assert pkg["selftest"]["samples"] == 4 and pkg["models"][0]["tolerance"]["cosine_min"] == 0.99
    assert sorted(p.name for p in pkg_dir.iterdir()) == ["check_model.py", "model.json", "models", "selftest"]
    p = _check(pkg_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("PASS") == 2
    # The vectors are plain little-endian arrays an app can read without numpy.
    v = pkg["selftest"]["vectors"][0]["inputs"]["image"]
    assert (pkg_dir / v["file"]).stat().st_size == 64 * 4


def test_corrupted_package_model_fails_its_self_test_clearly(digits_android, tmp_path):
    pkg_dir = tmp_path / "app"
    pkg = _package(digits_android, "android", pkg_dir)
    fp32 = pkg_dir / pkg["models"][1]["file"]
    # 1. a flipped byte: caught by the hash before the file is loaded
    data = bytearray(fp32.read_bytes())
    data[len(data) // 2] ^= 0xFF
    fp32.write_bytes(bytes(data))
    p = _check(pkg_dir, "--model", "litert-fp32")
    assert p.returncode == 1 and "sha256 mismatch: the file is corrupted or was replaced" in p.stdout
    # 2. corrupted weights whose hash was recomputed (e.g. a bad build step): the vectors catch it
    import torch

    from edgekit.sources import load_model

    w = load_model("builtin:digits", None).module.state_dict()
    fc = next(v for k, v in w.items() if k.endswith("weight") and v.ndim == 2).numpy().astype("<f4").tobytes()
    good = bytearray(shutil.copyfile(digits_android / _arts(digits_android)["litert-fp32"]["path"], fp32).read_bytes())
    at = bytes(good).find(fc[:64])
    assert at > 0, "the float weights are stored verbatim in the FP32 flatbuffer"
    good[at:at + len(fc)] = (-np.frombuffer(fc, "<f4")).astype("<f4").tobytes()  # negate one layer
    fp32.write_bytes(bytes(good))
    import hashlib

    pkg["models"][1]["sha256"] = hashlib.sha256(bytes(good)).hexdigest()
    (pkg_dir / "model.json").write_text(json.dumps(pkg))
    p = _check(pkg_dir, "--model", "litert-fp32")
    assert p.returncode == 1 and "self-test failed: logits: cosine" in p.stdout, p.stdout + p.stderr
    del torch


def test_ios_and_linux_packages_pick_what_those_apps_embed(digits_android, digits_bundle, tmp_path):
    ios = _package(digits_android, "ios", tmp_path / "ios")
    assert [x["id"] for x in ios["models"]] == ["executorch-int8", "executorch-fp32"]
    assert _check(tmp_path / "ios").returncode == 0
    linux = _package(digits_bundle, "linux", tmp_path / "linux")
    assert [x["id"] for x in linux["models"]] == ["onnxruntime-fp32", "onnxruntime-fp32-plain"]
    assert _check(tmp_path / "linux").returncode == 0
    one = _package(digits_android, "android", tmp_path / "one", "--artifact", "executorch-fp32")
    assert [x["id"] for x in one["models"]] == ["executorch-fp32"]


def test_package_refuses_what_it_cannot_do(digits_android, tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    p = run("package", digits_android, "--for", "android", "--out", tmp_path / "keep")
    assert p.returncode == 2 and "not an edgekit app package; refusing" in p.stderr
    assert (tmp_path / "keep" / "notes.txt").read_text() == "mine"
    p = run("package", digits_android, "--for", "android", "--out", tmp_path / "x", "--artifact", "litert-int9")
    assert p.returncode == 2 and "did you mean \"litert-int8\"" in p.stderr
    p = run("package", digits_android, "--for", "linux", "--out", tmp_path / "y", "--artifact", "onnxruntime-fp32")
    assert p.returncode == 2
    p = run("package", digits_android, "--for", "androd", "--out", tmp_path / "z")
    assert p.returncode == 2 and "android" in p.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()


@pytest.fixture(scope="module")
def tiny_android(tmp_path_factory):
    """A user's CNN (stride-0 float64 example, as users hand it over), channel-last LiteRT inputs, and
    a --calibration folder of .npy files: one compile covers the three."""
    from conftest import TINY_MODEL

    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny_model.py").write_text(TINY_MODEL)
    calib = d / "calib"
    calib.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):  # [N, C, H, W] stacks for a batch-1 model, float64 like user data
        np.save(calib / f"part{i}.npy", rng.standard_normal((8, 3, 6, 6)))
    out = d / "bundle"
    p = run("compile", "--model", f"{d / 'tiny_model.py'}:make", "--target", "android", "--layout", "nhwc",
            "--calibration", calib, "--out", out)
    return out, p, calib


def test_stride0_example_nhwc_layout_and_calibration_folder(tiny_android, tmp_path):
    out, p, calib = tiny_android
    assert p.returncode in (0, 12), p.stderr  # 12: an INT8 candidate missed the tolerance (recorded)
    m = json.loads((out / "manifest.json").read_text())
    arts = {a["id"]: a for a in m["artifacts"]}
    for aid in ("litert-fp32-nhwc", "executorch-fp32", "torchscript-lite-fp32"):
        assert arts[aid]["verification"]["status"] == "passed", (aid, arts[aid]["verification"]["reason"])
    lt = arts["litert-fp32-nhwc"]
    assert lt["input_layout"] == {"pixels": "NHWC"} and lt["converter"]["layout"] == "NHWC"
    assert lt["converter"]["artifact_io"]["inputs"][0]["shape"] == [1, 6, 6, 3]  # the file is channel-last
    assert lt["inputs"][0]["shape"] == [1, 3, 6, 6]  # the Python API keeps the model's layout
    assert arts["executorch-fp32"]["input_layout"] is None
    cal = m["model"]["calibration"]
    assert cal["source"] == f"--calibration {calib}" and cal["samples"] == 24
    for a in arts.values():
        if a["precision"] == "int8" and "quantization" in a["converter"]:
            assert a["converter"]["quantization"]["calibration_samples"] == 24
    # the predictor feeds NCHW arrays to the NHWC file and matches the reference
    from edgekit.samples import load_samples

    ins, refs, _ = load_samples(out / "selftest.npz")
    pred = edgekit.load(out, artifact="litert-fp32-nhwc")
    np.testing.assert_allclose(pred.predict(ins[0])["scores"], refs[0]["scores"], atol=1e-4)
    # and the app package says NHWC; its own checker transposes and passes
    pkg = _package(out, "android", tmp_path / "app", "--artifact", "litert-fp32-nhwc")
    assert pkg["models"][0]["input_layout"] == {"pixels": "NHWC"}
    assert _check(tmp_path / "app").returncode == 0


def test_layout_and_calibration_errors(tmp_path):
    p = run("compile", "--target", "cpu", "--layout", "nhwc", "--out", tmp_path / "a")
    assert p.returncode == 2 and "applies to LiteRT artifacts" in p.stderr
    p = run("compile", "--target", "android", "--calibration", tmp_path / "nope", "--out", tmp_path / "b")
    assert p.returncode == 2 and "no such file or folder" in p.stderr
    flat = tmp_path / "flat.py"  # no 4-D input: refused after loading, before any conversion
    flat.write_text("import torch\ndef make():\n    return torch.nn.Linear(8, 3).eval(), torch.randn(1, 8)\n")
    p = run("compile", "--model", f"{flat}:make", "--target", "rpi", "--layout", "nhwc", "--out", tmp_path / "c")
    assert p.returncode == 2 and "makes 4-D (N, C, H, W) inputs channel-last; this model has" in p.stderr, p.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    assert not list(tmp_path.glob("c.*partial"))


def test_minilm_l3_android_dynamic_int8_is_a_quarter_of_fp32_and_within_tolerance(minilm_l3_android):
    arts = _arts(minilm_l3_android)
    assert [a["verification"]["status"] for a in arts.values()] == ["passed"] * 5, \
        {k: a["verification"]["reason"] for k, a in arts.items()}
    for rt in ("litert", "executorch"):
        i8, f32 = arts[f"{rt}-int8"], arts[f"{rt}-fp32"]
        met = i8["verification"]["metrics"]["embedding"]
        assert met["cosine_min_sample"] >= 0.99 and met["nonfinite"] == 0
        assert f32["verification"]["metrics"]["embedding"]["cosine_min_sample"] >= 0.9999
        def per_copy(a):  # a bucketed artifact (dynamic length, edgekit.runtimes.buckets) holds one copy per bucket
            return a["size_bytes"] / max(1, len(a["converter"].get("buckets") or []))

        assert per_copy(i8) <= 0.35 * per_copy(f32), (rt, i8["size_bytes"], f32["size_bytes"])
        q = i8["converter"]["quantization"]
        # static INT8 loses too much on this transformer: the converter says so and went dynamic
        assert q["mode"] == "dynamic" and q["static_cosine_on_calibration"] < 0.99 and "why_dynamic" in q
        assert q["embeddings"].startswith("3 table(s) stored int8")
    io = arts["litert-fp32"]["converter"]["artifact_io"]["inputs"]
    assert [(t["name"], t["dtype"]) for t in io] == [("input_ids", "int32"), ("attention_mask", "int32")]


def test_litert_refuses_ids_that_do_not_fit_int32(minilm_l3_android):
    from edgekit.errors import InputError

    p = edgekit.load(minilm_l3_android, artifact="litert-fp32")
    ids = np.zeros((1, 64), np.int64)
    ok = p.predict({"input_ids": ids, "attention_mask": np.ones((1, 64), np.int64)})
    assert ok["embedding"].shape == (1, 384)
    ids[0, 3] = 2 ** 40
    with pytest.raises(InputError, match="do not fit the artifact's int32"):
        p.predict({"input_ids": ids, "attention_mask": np.ones((1, 64), np.int64)})


def test_rpi_profile_litert_then_portable_onnx():
    out, _ = digits_for("rpi")
    m = json.loads((out / "manifest.json").read_text())
    assert [(a["id"], a["role"], a["verification"]["status"]) for a in m["artifacts"]] == [
        ("litert-int8", "primary", "passed"), ("litert-fp32", "fallback", "passed"),
        ("onnxruntime-fp32-plain", "fallback", "passed")]
    assert m["artifacts"][2]["converter"]["fusions"] == {}  # standard ONNX ops: any ORT build runs it
    assert m["target"]["host_is_target"] is False and "Raspberry Pi" in m["target"]["primary_choice"]["why"]
