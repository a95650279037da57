"""Class 2: every name a manifest supplies is checked when the bundle is read, so `package` (or any
reader that builds a path, a log name or a file name from one) can never write outside its output.
The bundles are the real tiny-CNN bundle with one manifest field forged; `package` is the command
that wrote `../..` files before."""
from __future__ import annotations

import json
import shutil

import pytest

from attack import edgekit_cli, one_line_error, snapshot

pytestmark = [pytest.mark.onnxruntime]


def _forge(b, change):
    m = json.loads((b / "manifest.json").read_text())
    change(m)
    (b / "manifest.json").write_text(json.dumps(m))


def _art(m):
    return m["artifacts"][0]


FORGERIES = {
    "artifact id ../..": lambda m: _art(m).update(id="../../../ESCAPED"),
    "artifact id with a slash": lambda m: _art(m).update(id="a/../../ESCAPED"),
    "artifact path ../..": lambda m: _art(m).update(path="../../ESCAPED.onnx"),
    "absolute artifact path": lambda m: _art(m).update(path="/tmp/ESCAPED.onnx"),
    "self-test path ../..": lambda m: m["selftest"].update(path="../ESCAPED.npz"),
    "input tensor name ../..": lambda m: _art(m)["inputs"][0].update(name="../../../ESCAPED"),
    "model input name ../..": lambda m: m["model"]["inputs"][0].update(name="../../ESCAPED"),
    "tensor name with NUL": lambda m: _art(m)["inputs"][0].update(name="x\u0000y"),
    "runtime name ../..": lambda m: _art(m).update(runtime="../../x"),
    "negative dimension": lambda m: _art(m)["inputs"][0].update(shape=[-1, 3]),
    "deferred engine path": lambda m: _art(m).setdefault("converter", {}).update(deferred={"engine": "../../x.plan"}),
    "duplicate artifact ids": lambda m: m["artifacts"].append(dict(_art(m))),
}


def test_forged_selftest_vector_names_are_refused(tiny_bundle, tmp_path):
    """The self-test file is listed with its sha256 in the manifest, but that hash is self-attested: a
    forger rewrites both. Its tensor names (which became package file names) are held to the same rule."""
    import hashlib

    import numpy as np

    b = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    st = b / m["selftest"]["path"]
    with np.load(st) as z:
        arrays = {("in:../../../ESCAPED" if k.startswith("in:") else k): z[k] for k in z.files}
    np.savez(st, **arrays)
    m["selftest"].update(sha256=hashlib.sha256(st.read_bytes()).hexdigest(), size_bytes=st.stat().st_size)
    (b / "manifest.json").write_text(json.dumps(m))
    before = snapshot(tmp_path)
    err = one_line_error(edgekit_cli("package", b, "--for", "linux", "--out", tmp_path / "pkg"), 8)
    assert "self-test tensor name" in err
    assert snapshot(tmp_path) == before and not list(tmp_path.parent.rglob("ESCAPED*"))


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_manifest_name_is_refused_and_nothing_escapes(tiny_bundle, tmp_path, forgery):
    work = tmp_path / "w"
    b = work / "bundle"
    shutil.copytree(tiny_bundle, b)
    _forge(b, FORGERIES[forgery])
    before = snapshot(tmp_path)
    for argv in (["package", b, "--for", "linux", "--out", work / "pkg"], ["verify", b, "--no-history"],
                 ["bench", b, "--min-runs", "1", "--min-time", "0", "--warmup", "0", "--no-history"]):
        err = one_line_error(edgekit_cli(*argv), 8)
        assert "manifest" in err, err
    assert snapshot(tmp_path) == before  # not one file written or deleted, inside or out
    assert not list(tmp_path.parent.rglob("ESCAPED*"))


def test_tensor_names_never_become_paths_in_a_package(tiny_bundle, tmp_path):
    """Names a model legitimately has ("/conv/Conv_output_0", "x:0") are file-name parts only after
    sanitizing, and every file of the package lies inside it."""
    from edgekit.package import _file_part

    assert _file_part("/conv/Conv_output_0") == "_conv_Conv_output_0"
    for name in ("../..", "..", "/etc/passwd", "a\\b", "x:0"):
        part = _file_part(name)
        assert "/" not in part and "\\" not in part and not part.startswith("."), (name, part)
    out = tmp_path / "pkg"
    p = edgekit_cli("package", tiny_bundle, "--for", "linux", "--out", out)
    assert p.returncode == 0, p.stderr
    pkg = json.loads((out / "model.json").read_text())
    files = [t["file"] for v in pkg["selftest"]["vectors"] for t in [*v["inputs"].values(), *v["expected"].values()]]
    assert files and all((out / f).resolve().parent == (out / "selftest").resolve() for f in files)
