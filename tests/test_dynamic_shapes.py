"""Dynamic shapes end to end (issue 23): bounded dynamic dims from `--input` ranges and a factory's
`dynamic_shapes`; every artifact verified at several shapes; dynamic where the runtime can keep the
dims, shape buckets where not; TensorRT's optimization profile; builtin:minilm at 1..128 tokens.

The conv net (tests/gallery/dynamic_cnn.py: H and W in 32..128) is exported to ONNX with symbolic
H and W here, as a user's exporter would. Android takes PyTorch sources only, so it compiles the
same network from the factory, whose `dynamic_shapes` say the same bounds."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edgekit
from conftest import ROOT, edgekit as run, import_file, needs
from edgekit.errors import InputError, ModelSourceError
from edgekit.sources.dynamic import DynamicDim, at_point, bucket_points, default_opt, from_factory, points

CNN = ROOT / "tests" / "gallery" / "dynamic_cnn.py"
HW = "image:1x3x[32..128]x[32..128]"


def _arts(bundle) -> dict:
    return {a["id"]: a for a in json.loads((bundle / "manifest.json").read_text())["artifacts"]}


def _shapes(a) -> dict:
    """{label: cosine_min_sample} of an artifact's extra verification shapes (all passed)."""
    v = a["verification"]
    assert v["status"] == "passed", (a["id"], v["reason"])
    out = {}
    for s in v["shapes"]:
        assert s["status"] == "passed" and s["samples"] >= 8, s
        out[s["label"]] = min(m["cosine_min_sample"] for m in s["metrics"].values())
    return out


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("dyncnn") / "dynamic_cnn.onnx"
    import_file(CNN).export_onnx(path)
    return path


# -- the pieces, without a compile ------------------------------------------------------------

def test_shape_points_cover_min_opt_max_and_a_mixed_point():
    h = DynamicDim("H", 32, 128, 64, (("image", 2),))
    w = DynamicDim("W", 32, 128, 64, (("image", 3),))
    assert points([h, w]) == [{"H": 32, "W": 32}, {"H": 128, "W": 128}, {"H": 32, "W": 128}]  # opt is the main set
    seq = DynamicDim("seq", 1, 128, 32, (("ids", 1), ("mask", 1)), (1, 8, 32, 128), pad=(("ids", 0), ("mask", 0)))
    assert points([seq]) == [{"seq": 1}, {"seq": 8}, {"seq": 128}]
    # a paddable dim's smallest size pads up to the next bucket (and verification there checks it)
    assert bucket_points([seq]) == [{"seq": 32}, {"seq": 8}, {"seq": 128}]
    assert bucket_points([h, w])[0] == {"H": 64, "W": 64} and len(bucket_points([h, w])) == 4
    assert default_opt(320, 1280) == 640 and default_opt(1, 128) == 11 and default_opt(32, 128) == 64


def test_samples_at_other_sizes_are_crops_or_wraps_of_real_ones():
    seq = DynamicDim("seq", 1, 128, 4, (("ids", 1),))
    s = {"ids": np.array([[5, 6, 7, 8]]), "other": np.ones((1, 2))}
    assert at_point(s, [seq], {"seq": 2})["ids"].tolist() == [[5, 6]]
    assert at_point(s, [seq], {"seq": 6})["ids"].tolist() == [[5, 6, 7, 8, 5, 6]]
    assert at_point(s, [seq], {"seq": 6})["other"].shape == (1, 2)


def test_factory_dynamic_shapes_are_checked():
    ex = {"ids": np.zeros((1, 16), np.int64), "mask": np.zeros((1, 16), np.int64)}
    dims = from_factory({"ids": {1: ("seq", 1, 64)}, "mask": {1: ("seq", 1, 64)}}, ex, "f")
    assert len(dims) == 1 and dims[0].uses == (("ids", 1), ("mask", 1)) and dims[0].opt == 16
    for bad, says in [({"ids": {1: ("seq", 1, 8)}}, "got min 1, opt 16, max 8"), ({"idz": {1: ("seq", 1, 64)}}, "names input 'idz'"),
                      ({"ids": {3: ("seq", 1, 64)}}, "has no axis 3"), ({"ids": {1: ("seq", 1)}}, "not (name, min, max)"),
                      ({"ids": {1: ("seq", 1, 64)}, "mask": {1: ("seq", 1, 32)}}, "two different bounds")]:
        with pytest.raises(ModelSourceError, match=says.replace("(", r"\(").replace(")", r"\)")):
            from_factory(bad, ex, "f")


# -- compiles --------------------------------------------------------------------------------

@pytest.mark.onnxruntime
def test_onnx_ranges_on_cpu_dynamic_and_served_at_any_size_within_bounds(cnn_onnx, tmp_path):
    p = run("compile", "--model", cnn_onnx, "--target", "cpu", "--out", tmp_path / "x")
    assert p.returncode == 2 and "symbolic dims 'H', 'W'" in p.stderr and "--input image:1x3xHxW" in p.stderr
    out = tmp_path / "b"
    p = run("compile", "--model", cnn_onnx, "--target", "cpu", "--input", HW, "--out", out)
    assert p.returncode in (0, 12), p.stderr  # 12: the TorchScript candidate takes PyTorch sources only
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["inputs"][0]["shape"] == [1, 3, 64, 64]  # opt: the geometric mean of the bounds
    assert m["model"]["inputs"][0]["dynamic"] == [[2, "H", 32, 128], [3, "W", 32, 128]]
    assert [d["name"] for d in m["model"]["dynamic"]] == ["H", "W"]
    arts = _arts(out)
    for aid in ("onnxruntime-fp32", "onnxruntime-fp32-plain"):
        assert set(_shapes(arts[aid])) == {"H=32,W=32", "H=128,W=128", "H=32,W=128"}
        assert arts[aid]["converter"]["shape_support"].startswith("dynamic")
    import onnx

    dims = [d.dim_param or d.dim_value for d in onnx.load(out / arts["onnxruntime-fp32"]["path"]).graph.input[0]
            .type.tensor_type.shape.dim]
    assert dims == [1, 3, "H", "W"]  # kept symbolic in the artifact
    pred = edgekit.load(out)
    net = import_file(CNN)._net()
    import torch

    x = np.random.default_rng(0).standard_normal((1, 3, 48, 96)).astype(np.float32)  # never verified: between
    got = pred.predict({"image": x})["logits"]
    with torch.no_grad():
        assert np.allclose(got, net(torch.from_numpy(x)).numpy(), atol=1e-4)
    with pytest.raises(InputError, match=r"expected float32\[1, 3, H:32..128, W:32..128\]"):
        pred.predict({"image": np.zeros((1, 3, 200, 64), np.float32)})
    r = run("bench", out, "--shape", "H=32,W=128", "--shape", "H=128", "--min-runs", "3", "--min-time", "0",
            "--warmup", "0", "--no-history", "--json", tmp_path / "b.json")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [x["input_shapes"]["image"] for x in res] == [[1, 3, 32, 128], [1, 3, 128, 64]]
    for bad, says in [("Q=3", "no dynamic dim 'Q'"), ("H=300", "outside its bounds [32..128]"), ("H", "DIM=SIZE")]:
        r = run("bench", out, "--shape", bad, "--no-history")
        assert r.returncode == 2 and says in r.stderr, r.stderr


@pytest.mark.slow
@pytest.mark.tvm
@needs("tvm", "aarch64-g++", "nvcc")
def test_onnx_ranges_on_jetson_record_the_tensorrt_profile_and_bucket_tvm(cnn_onnx, tmp_path):
    out = tmp_path / "j"
    p = run("compile", "--model", cnn_onnx, "--target", "jetson", "--input", HW, "--out", out)
    assert p.returncode == 0, p.stderr
    arts = _arts(out)
    trt = arts["tensorrt-fp16"]["converter"]
    assert trt["profile"] == {"image": {"min": [1, 3, 32, 32], "opt": [1, 3, 64, 64], "max": [1, 3, 128, 128]}}
    assert trt["deferred"]["profile"] == trt["profile"]  # what `edgekit build` hands TensorRT's builder
    assert {s["label"] for s in trt["host_check"]["shapes"]} == {"H=32,W=32", "H=128,W=128", "H=32,W=128"}
    assert min(m["cosine_min_sample"] for s in trt["host_check"]["shapes"] for m in s["metrics"].values()) > 0.999
    for aid in ("tvm-fp32-cuda-sm87", "tvm-fp32-aarch64"):  # static artifacts: one per shape
        a = arts[aid]
        assert a["path"].endswith(".buckets") and a["format"] == "tvm-module-buckets"
        assert [b["label"] for b in a["converter"]["buckets"]] == ["H=64,W=64", "H=32,W=32", "H=128,W=128", "H=32,W=128"]
        assert a["verification"]["status"] == "not-run"  # aarch64 / GPU: verified on the device
    assert len(_shapes(arts["onnxruntime-fp32-plain"])) == 3


@pytest.mark.slow
@pytest.mark.tvm
@needs("tvm")
def test_tvm_buckets_run_here_and_refuse_a_shape_they_do_not_have(cnn_onnx, tmp_path):
    out = tmp_path / "t"
    p = run("compile", "--model", cnn_onnx, "--target", "cpu-tvm", "--input", HW, "--out", out)
    assert p.returncode in (0, 12), p.stderr
    tvm = next(a for a in _arts(out).values() if a["runtime"] == "tvm")
    assert tvm["format"].endswith("-buckets") and len(_shapes(tvm)) == 3
    assert {s["bucket"] for s in tvm["verification"]["shapes"]} == {"H=32,W=32", "H=128,W=128", "H=32,W=128"}
    pred = edgekit.load(out, artifact=tvm["id"])
    assert pred.predict({"image": np.zeros((1, 3, 32, 128), np.float32)})["logits"].shape == (1, 5)
    with pytest.raises(InputError, match="no shape bucket .* the model declares no dim paddable"):
        pred.predict({"image": np.zeros((1, 3, 48, 48), np.float32)})  # within bounds, but no bucket: no padding


@pytest.mark.slow
@pytest.mark.tfjs_node
@needs("tfjs-converter", "node-tfjs")
def test_onnx_ranges_on_browser_keep_tfjs_dims_dynamic(cnn_onnx, tmp_path):
    out = tmp_path / "w"
    p = run("compile", "--model", cnn_onnx, "--target", "browser", "--input", HW, "--out", out)
    assert p.returncode == 0, p.stderr
    for a in _arts(out).values():
        assert a["converter"]["shape_support"].startswith("dynamic"), a["converter"]["shape_support"]
        assert len(_shapes(a)) == 3
    model = json.loads((out / _arts(out)["tfjs-fp32"]["path"] / "model.json").read_text())
    assert "-1" in json.dumps(model["modelTopology"])[:20000]  # H, W unknown (-1) in the graph's input


@pytest.mark.slow
@pytest.mark.litert
@pytest.mark.executorch
@pytest.mark.torchscript_lite
@needs("litert-torch", "ai-edge-litert", "executorch")
def test_factory_dynamic_shapes_on_android_every_artifact_dynamic(tmp_path):
    out = tmp_path / "a"
    p = run("compile", "--model", f"{CNN}:make", "--target", "android", "--out", out)
    assert p.returncode == 0, p.stderr
    arts = _arts(out)
    assert set(arts) == {"litert-int8", "litert-fp32", "executorch-int8", "executorch-fp32", "torchscript-lite-fp32"}
    for aid, a in arts.items():
        cos = _shapes(a)
        assert set(cos) == {"H=32,W=32", "H=128,W=128", "H=32,W=128"}, aid
        assert a["converter"]["shape_support"].startswith("dynamic"), (aid, a["converter"]["shape_support"])
        assert min(cos.values()) >= (0.9999 if a["precision"] == "fp32" else 0.99), (aid, cos)
    assert arts["litert-fp32"]["converter"]["delegation"]["flops_share"] >= 0.9  # counted at the opt shape
    x = np.random.default_rng(1).standard_normal((1, 3, 96, 40)).astype(np.float32)
    import torch

    with torch.no_grad():
        want = import_file(CNN)._net()(torch.from_numpy(x)).numpy()
    for aid in ("litert-fp32", "executorch-fp32", "torchscript-lite-fp32"):
        assert np.allclose(edgekit.load(out, artifact=aid).predict(x)["logits"], want, atol=1e-4), aid


# -- builtin:minilm at any length 1..128 (the shared bundles other tests read too) -------------

@pytest.mark.slow
@pytest.mark.onnxruntime
@pytest.mark.torchscript_lite
def test_minilm_cpu_verified_at_1_8_32_and_128_tokens(minilm_bundle):
    m = json.loads((minilm_bundle / "manifest.json").read_text())
    assert m["model"]["dynamic"] == [{"name": "seq", "min": 1, "opt": 32, "max": 128, "verify_sizes": [1, 8, 32, 128],
                                      "inputs": [["input_ids", 1], ["attention_mask", 1]],
                                      "pad": {"input_ids": 0, "attention_mask": 0}}]
    for aid in ("onnxruntime-fp32", "onnxruntime-fp32-plain", "torchscript-lite-fp32"):
        a = _arts(minilm_bundle)[aid]
        cos = _shapes(a)
        assert set(cos) == {"seq=1", "seq=8", "seq=128"} and min(cos.values()) >= 0.9999, (aid, cos)
        assert a["verification"]["metrics"]["embedding"]["cosine_min_sample"] >= 0.9999  # at 32, the main set


@pytest.mark.slow
@pytest.mark.litert
@pytest.mark.executorch
@needs("litert-torch", "ai-edge-litert", "executorch")
def test_minilm_l3_android_executorch_dynamic_litert_padded_buckets(minilm_l3_android):
    arts = _arts(minilm_l3_android)
    et = arts["executorch-fp32"]
    assert et["converter"]["shape_support"].startswith("dynamic")
    assert min(_shapes(et).values()) >= 0.9999
    lite = arts["litert-fp32"]  # litert-torch cannot lower BERT's symbolic reshapes: buckets, padded
    assert lite["path"].endswith(".buckets") and "could not keep the dims dynamic" in lite["converter"]["shape_support"]
    assert [b["label"] for b in lite["converter"]["buckets"]] == ["seq=32", "seq=8", "seq=128"]
    shapes = {s["label"]: s for s in lite["verification"]["shapes"]}
    assert shapes["seq=1"]["bucket"] == "seq=8"  # length 1 ran padded in the 8-token bucket, and passed
    assert min(_shapes(lite).values()) >= 0.9999
    ids = np.array([[101, 7592, 2088, 2003, 1037, 3231, 1012, 102, 2023, 2003, 2178, 6251, 1012, 102, 2307, 2154,
                     102]], np.int64)  # 17 tokens: no bucket of its own
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    ref = edgekit.load(minilm_l3_android, artifact="executorch-fp32").predict(feed)["embedding"]
    got = edgekit.load(minilm_l3_android, artifact="litert-fp32").predict(feed)["embedding"]
    assert (ref @ got.T).item() > 0.9999


@pytest.mark.onnxruntime
def test_input_ranges_on_a_pytorch_source_replace_its_dynamic_dims(tmp_path):
    out = tmp_path / "f"
    p = run("compile", "--model", f"{CNN}:make", "--target", "cpu", "--input", "image:1x3x[40..96]x64", "--out", out)
    assert p.returncode == 0, p.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert [(d["name"], d["min"], d["opt"], d["max"]) for d in m["model"]["dynamic"]] == [("image_2", 40, 64, 96)]
    assert {s["label"] for s in m["model"]["verify_shapes"]} == {"image_2=40", "image_2=96"}
    assert all(len(_shapes(a)) == 2 for a in _arts(out).values())
    for spec, says in [("image:1x3x[80..96]x64", "leaves out the example's size 64"),
                       ("image:1x3x64x32", "dim 3 of the example's 'image' is 64"), ("img:1x3x64x64", "no input 'img'")]:
        p = run("compile", "--model", f"{CNN}:make", "--target", "cpu", "--input", spec, "--out", tmp_path / "x")
        assert p.returncode == 2 and says in p.stderr, (spec, p.stderr)
    p = run("compile", "--target", "cpu", "--input", "image:1x1x[4..8]x8", "--out", tmp_path / "x")
    assert p.returncode == 14 and "at image_2=4, a size within the dynamic dims' bounds" in p.stderr, p.stderr
    # a factory says the same in its dict
    (tmp_path / "f.py").write_text(f"import sys\nsys.path.insert(0, {str(CNN.parent)!r})\nimport dynamic_cnn\n"
                                   "def make():\n    d = dynamic_cnn.make()\n    del d['dynamic_shapes']\n"
                                   "    return {**d, 'input_specs': ['image:1x3x64x[48..80]']}\n")
    p = run("compile", "--model", f"{tmp_path / 'f.py'}:make", "--target", "cpu", "--out", tmp_path / "g")
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert [(d["name"], d["min"], d["max"]) for d in m["model"]["dynamic"]] == [("image_3", 48, 80)]


@pytest.mark.onnxruntime
def test_example_gives_the_real_input_artifacts_are_built_at(cnn_onnx, tmp_path):
    img = import_file(CNN)._images(1, 7)[0]
    x = np.concatenate([img, img], axis=3)[:, :, :40, :96].copy()  # a real (smooth) image, 40x96
    np.savez(tmp_path / "ex.npz", image=x)
    out = tmp_path / "e"
    p = run("compile", "--model", cnn_onnx, "--target", "cpu", "--input", "image:1x3x[32..128]x[32..128]",
            "--example", tmp_path / "ex.npz", "--out", out)
    assert p.returncode == 3 and "does not fit the model input [1, 3, 64, 64]" in p.stderr, p.stderr  # opt shape
    p = run("compile", "--model", cnn_onnx, "--target", "cpu", "--input", "image:1x3x40x96",
            "--example", tmp_path / "ex.npz", "--out", out)
    assert p.returncode in (0, 12), p.stderr
    assert json.loads((out / "manifest.json").read_text())["model"]["inputs"][0]["shape"] == [1, 3, 40, 96]
    p = run("compile", "--model", cnn_onnx, "--target", "cpu", "--input", "image:1x3x40x96",
            "--example", tmp_path / "nope.npz", "--out", out)
    assert p.returncode == 2 and "--example" in p.stderr and "no such file" in p.stderr
