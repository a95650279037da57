"""The browser target: TF.js graph models built by onnx2tf + tensorflowjs (their own venv), verified
on the real @tensorflow/tfjs in Node, and run in a page of real headless Chromium on 127.0.0.1.

Small models only (digits, a tiny encoder with int64 ids, LayerNorm, exact GELU and an L2
normalize): onnx2tf takes minutes on MiniLM. The MiniLM numbers are in docs/targets/browser.md, measured by hand.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, digits_for, edgekit as run, needs, shared_bundle

pytestmark = [needs("tfjs-converter", "node-tfjs", "chromium"), pytest.mark.tfjs_node]
TINY = ROOT / "tests" / "gallery" / "tiny_encoder.py"


def _arts(bundle) -> dict:
    return {a["id"]: a for a in json.loads((bundle / "manifest.json").read_text())["artifacts"]}


@pytest.fixture(scope="session")
def digits_browser():
    return digits_for("browser")[0]


@pytest.fixture(scope="session")
def tiny_browser():
    return shared_bundle("tiny-browser", "--model", f"{TINY}:make", "--target", "browser")[0]


@pytest.mark.slow
def test_digits_tfjs_artifacts_verified_in_node(digits_browser):
    arts = _arts(digits_browser)
    assert [arts[i]["role"] for i in ("tfjs-fp16", "tfjs-fp32", "tfjs-int8")] == ["primary", "fallback", "fallback"]
    for a in arts.values():
        v = a["verification"]
        assert v["status"] == "passed" and v["samples"] >= 300, v
        assert (digits_browser / a["path"] / "model.json").is_file()
        assert a["input_layout"] == {"image": "NHWC"}  # onnx2tf moved the channels; recorded, not guessed
    m = {k: arts[k]["verification"]["metrics"]["logits"] for k in arts}
    assert m["tfjs-fp32"]["cosine_min_sample"] >= 0.9999 and m["tfjs-fp32"]["max_abs"] < 1e-4
    assert m["tfjs-fp16"]["cosine_min_sample"] >= 0.999 and m["tfjs-int8"]["cosine_min_sample"] >= 0.99
    assert m["tfjs-fp16"]["top1_agreement"] >= 0.99 and m["tfjs-int8"]["top1_agreement"] >= 0.99
    # quantized weights are smaller on disk, and not identical to FP32 (the quantization happened)
    size = {k: arts[k]["size_bytes"] for k in arts}
    assert size["tfjs-int8"] < size["tfjs-fp16"] < 0.6 * size["tfjs-fp32"]
    assert m["tfjs-fp16"]["max_abs"] > m["tfjs-fp32"]["max_abs"]
    conv = arts["tfjs-fp16"]["converter"]
    assert conv["versions"]["onnx2tf"] == "1.29.24" and conv["versions"]["tensorflowjs"] == "4.22.0"
    assert arts["tfjs-fp32"]["converter"]["saved_model"] == "reused"  # one onnx2tf run per compile


@pytest.mark.slow
def test_tiny_encoder_int64_ids_gelu_and_l2_normalize(tiny_browser):
    arts = _arts(tiny_browser)
    fp32 = arts["tfjs-fp32"]
    assert fp32["verification"]["metrics"]["embedding"]["cosine_min_sample"] >= 0.9999
    assert fp32["converter"]["artifact_io"]["inputs_cast"] == {"input_ids": "int32", "attention_mask": "int32"}
    rewrites = " ".join(arts["tfjs-fp16"]["converter"]["rewrites"])
    assert "ReduceL2" in rewrites and "Gelu" in rewrites
    assert all(a["verification"]["status"] == "passed" for a in arts.values())


@pytest.mark.slow
@pytest.mark.chromium
def test_headless_chromium_runs_the_models_in_a_page(digits_browser, tiny_browser):
    """verify --device chromium: every TF.js artifact's self-test in a real page, real numbers."""
    for bundle in (digits_browser, tiny_browser):
        p = run("verify", bundle, "--device", "chromium", check=True)
        assert "HeadlessChrome" in p.stdout
        assert p.stdout.count("passed") == 3, p.stdout
    # the page's outputs against the PyTorch reference, directly (int64 ids go in as int32)
    from edgekit.bundle import open_bundle
    from edgekit.runtimes import open_runner
    from edgekit.selftest import selftest_feeds

    m = open_bundle(tiny_browser)
    a = next(a for a in m.artifacts if a.id == "tfjs-fp32")
    runner = open_runner("tfjs-chromium", tiny_browser / a.path, None, a.inputs, a.outputs, a.input_layout)
    try:
        ins, refs = selftest_feeds(tiny_browser, m)
        got = [runner.run(x)["embedding"] for x in ins]
        assert runner.ready["backend"] == "wasm" and "HeadlessChrome" in runner.user_agent
    finally:
        runner.close()
    err = max(float(np.abs(g - r["embedding"]).max()) for g, r in zip(got, refs))
    assert len(got) >= 4 and err < 1e-4, err
    assert runner.proc.poll() is not None  # the browser is gone after close()


@pytest.mark.slow
@pytest.mark.chromium
def test_bench_in_chromium_times_inside_the_page(digits_browser, tmp_path):
    out = tmp_path / "bench.json"
    run("bench", digits_browser, "--device", "chromium", "--min-runs", "20", "--min-time", "0.2",
        "--json", out, check=True)
    r = json.loads(out.read_text())
    r = r["results"][0] if "results" in r else r  # one artifact (the primary): the result itself
    assert r["runtime"] == "tfjs-chromium" and r["runs"] >= 20 and "runtime itself" in r["timed_by"]
    assert "HeadlessChrome" in r["user_agent"] and r["latency_ms"]["p50"] > 0


def test_browser_errors_are_clear(digits_bundle, tmp_path):
    p = run("bench", digits_bundle, "--device", "chromium")
    assert p.returncode != 0 and "--device chromium runs TF.js artifacts only" in p.stderr
    p = run("compile", "--target", "browser", "--out", tmp_path / "x", env={"EDGEKIT_TFJS_PYTHON": "/nonexistent/python"})
    assert p.returncode != 0 and "scripts/setup-env.sh web" in (p.stdout + p.stderr)
    assert not (tmp_path / "x" / "manifest.json").exists()


WEB_APP = """
import { loadEdgekitModel } from "/model/edgekit-web.js";
const post = (o) => fetch("/result", {method: "POST", body: JSON.stringify(o)});
try {
  const m = await loadEdgekitModel("/model/", tf);
  const v = m.package.selftest.vectors[0];
  const input = new Float32Array(await (await fetch("/model/" + v.inputs.image.file)).arrayBuffer());
  const out = await m.predict({image: input});
  const want = new Float32Array(await (await fetch("/model/" + v.expected.logits.file)).arrayBuffer());
  const argmax = (a) => a.indexOf(Math.max(...a));
  await post({used: m.used, problems: m.problems, selftest: m.selfTestResult,
              top1: argmax(Array.from(out.logits.data)), want_top1: argmax(Array.from(want)),
              max_abs: Math.max(...Array.from(want).map((w, i) => Math.abs(w - out.logits.data[i])))});
} catch (e) { await post({error: String(e && e.message ? e.message : e)}); }
"""


@pytest.mark.slow
@pytest.mark.chromium
def test_web_package_loads_self_tests_and_falls_back_in_chromium(digits_browser, tmp_path):
    """package --for web, then the package's own ES-module loader in a real page: self-test on load,
    predict in the model's NCHW layout; a corrupted primary makes the fallback take over."""
    import shutil

    from edgekit.runtimes.chromium import run_page

    pkg = tmp_path / "web"
    p = run("package", digits_browser, "--for", "web", "--out", pkg, check=True)
    assert "edgekit-web.js" in p.stdout and (pkg / "edgekit-web.js").is_file()
    meta = json.loads((pkg / "model.json").read_text())
    assert [m["id"] for m in meta["models"]] == ["tfjs-fp16", "tfjs-fp32"]
    assert meta["models"][0]["input_layout"] == {"image": "NHWC"} and meta["inputs"][0]["layout"] == "NCHW"
    r = run_page(pkg, WEB_APP, timeout_s=120)
    assert "error" not in r, r
    assert r["used"] == "tfjs-fp16" and r["problems"] == [] and r["selftest"]["passed"]
    assert r["selftest"]["worst_cosine"] >= 0.999 and len(r["selftest"]["results"]) == meta["selftest"]["samples"]
    assert r["top1"] == r["want_top1"] and r["max_abs"] < 0.05

    broken = tmp_path / "web-broken"
    shutil.copytree(pkg, broken)
    shard = next((broken / "models" / "tfjs-fp16.tfjs").glob("*.bin"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # a truncated download
    r = run_page(broken, WEB_APP, timeout_s=120)
    assert r["used"] == "tfjs-fp32" and r["selftest"]["passed"], r
    assert len(r["problems"]) == 1 and r["problems"][0].startswith("tfjs-fp16 (primary)")
