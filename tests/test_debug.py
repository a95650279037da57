"""`edgekit debug` names the layer where an artifact leaves its source model, and its source line.

A known defect is put into one layer of a real converted artifact (one convolution's weights scaled,
as a wrong constant fold would), the manifest is re-hashed as the buggy converter would have written
it, and `debug` must name that convolution (`conv2d_1`, the `middle` conv of
tests/gallery/three_convs.py, line 16), not the layers before it and not only the output. A compile
whose converter has such a bug must fail with a message that names the layer too."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, edgekit, shared_bundle

MODEL = f"{ROOT / 'tests' / 'gallery' / 'three_convs.py'}:make"
LINE = "three_convs.py:16"  # x = torch.relu(self.middle(x))
PLUGINS = ROOT / "tests" / "plugins"


def _copy(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / bundle.name
    shutil.copytree(bundle, out)
    return out


def _rehash(bundle: Path, artifact_id: str) -> None:
    """The manifest as a converter that wrote the defective file would have written it."""
    m = json.loads((bundle / "manifest.json").read_text())
    a = next(a for a in m["artifacts"] if a["id"] == artifact_id)
    data = (bundle / a["path"]).read_bytes()
    a["sha256"], a["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (bundle / "manifest.json").write_text(json.dumps(m, indent=1))


def _scale_in_file(path: Path, weights: np.ndarray, factor: float = 1.5) -> None:
    """Find one layer's float32 weights in a flatbuffer (.tflite, .pte) by their bytes; scale them in place."""
    data = bytearray(path.read_bytes())
    raw = np.ascontiguousarray(weights, np.float32).tobytes()
    at = data.find(raw)
    assert at >= 0 and data.find(raw, at + 1) < 0, "the weights are stored once, as float32"
    data[at:at + len(raw)] = (np.frombuffer(raw, np.float32) * factor).astype(np.float32).tobytes()
    path.write_bytes(bytes(data))


def _middle_weights(layout: str = "oihw") -> np.ndarray:
    from conftest import import_file

    w = import_file(ROOT / "tests" / "gallery" / "three_convs.py").make()["model"].middle.weight.detach().numpy()
    return w.transpose(0, 2, 3, 1) if layout == "ohwi" else w


def _debug(bundle: Path, artifact: str, tmp_path: Path):
    p = edgekit("debug", bundle, "--artifact", artifact, "--json", tmp_path / "debug.json")
    assert p.returncode == 0, p.stderr
    last = p.stdout.strip().splitlines()[-1]
    return last, json.loads((tmp_path / "debug.json").read_text())[0]


@pytest.mark.onnxruntime
def test_debug_names_the_broken_layer_on_onnxruntime(tmp_path):
    import onnx
    from onnx import numpy_helper

    clean, _ = shared_bundle("three-convs-cpu", "--model", MODEL, "--target", "cpu")
    last, r = _debug(clean, "onnxruntime-fp32", tmp_path)
    assert last.startswith("first divergence: none") and r["first"] is None  # no false alarm on a good one
    assert r["matched"] >= 6 and max(x["rel_err"] for x in r["rows"] if "rel_err" in x) < 1e-5

    bundle = _copy(clean, tmp_path)
    path = bundle / "artifacts" / "onnxruntime-fp32.onnx"
    model = onnx.load(str(path))
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and "conv2d_1" in n.output)
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(model, str(path))
    _rehash(bundle, "onnxruntime-fp32")
    last, r = _debug(bundle, "onnxruntime-fp32", tmp_path)
    assert last.startswith("first divergence: conv2d_1 (middle (Conv2d)") and LINE in last, last
    rows = {x["name"]: x for x in r["rows"]}
    assert rows["conv2d"]["rel_err"] < 1e-5 and rows["conv2d_1"]["rel_err"] > 0.1  # before it clean, at it broken


@pytest.mark.onnxruntime
def test_a_failed_compile_names_the_layer(tmp_path):
    """A converter with a bug (tests/plugins/buggy_converter.py scales conv2d_1's weights): the compile
    fails verification, and its error names the layer and the user's line, not only the output."""
    env = {"EDGEKIT_PLUGINS": "buggy_converter",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))}
    p = edgekit("compile", "--model", MODEL, "--target", "buggy", "--out", tmp_path / "b", env=env)
    assert p.returncode == 7, p.stderr  # VerificationFailed: no artifact passed
    assert "first divergence: conv2d_1 (middle (Conv2d)" in p.stderr and LINE in p.stderr, p.stderr[-2000:]


@pytest.fixture(scope="module")
def android_fp32():
    return shared_bundle("three-convs-android-fp32", "--model", MODEL, "--target", "android", "--precision", "fp32")[0]


@pytest.mark.parametrize("artifact, file", [
    pytest.param("litert-fp32", "litert-fp32.tflite", marks=pytest.mark.litert),  # TFLite filters are OHWI
    pytest.param("executorch-fp32", "executorch-fp32.pte", marks=pytest.mark.executorch),  # XNNPACK's too
])
def test_debug_names_the_broken_layer_on_mobile_runtimes(android_fp32, tmp_path, artifact, file):
    bundle = _copy(android_fp32, tmp_path)
    _scale_in_file(bundle / "artifacts" / file, _middle_weights("ohwi"))
    _rehash(bundle, artifact)
    last, r = _debug(bundle, artifact, tmp_path)
    # both fuse the convolution with its relu: the tensor is relu_1's, and the line says so
    assert last.startswith("first divergence: relu_1") and "fused with conv2d_1 (middle (Conv2d))" in last, last
    assert LINE in last
    rows = {x["name"]: x for x in r["rows"]}
    assert rows["relu"]["rel_err"] < 1e-5 and rows["relu_1"]["rel_err"] > 0.1
    if artifact.startswith("executorch"):  # read from a debug twin that carries the shipped file's weights
        assert any("1 weight buffer(s) differed" in n for n in r["notes"]), r["notes"]
        assert not any("differs from the shipped" in n for n in r["notes"]), r["notes"]  # and reproduces it


@pytest.mark.onnxruntime
def test_report_plots_error_against_depth(tmp_path):
    clean, _ = shared_bundle("three-convs-cpu", "--model", MODEL, "--target", "cpu")
    page = tmp_path / "r.html"
    p = edgekit("report", clean, "--layers", "--html", page, "--min-runs", "5", "--min-time", "0.05", "--warmup", "0")
    assert p.returncode == 0, p.stderr
    html = page.read_text()
    assert 'id="plot-layers"' in html and "Error vs depth" in html
    # one line per traced artifact (ONNX Runtime's two; TorchScript is not read), in the page and the summary
    assert html.count("class='first-divergence'") == 2 and p.stdout.count(": first divergence: none") == 2
