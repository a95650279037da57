"""Class 3: publishing replaces only an edgekit bundle (or app package) at OUT and removes only what
this run made. Before: any folder holding a file named manifest.json (or model.json) was replaced,
and every sibling OUT.old-* and OUT.partial was deleted."""
from __future__ import annotations

import json
import shutil

import pytest

from attack import edgekit_cli, one_line_error, snapshot
from conftest import TINY_CNN
from edgekit.bundle import BundleWriter
from edgekit.errors import UsageError

pytestmark = [pytest.mark.onnxruntime]


def _web_app(d, marker_file):
    d.mkdir(parents=True)
    (d / "index.html").write_text("<h1>my app</h1>")
    (d / marker_file).write_text(json.dumps({"name": "my web app", "start_url": "/"}))
    return d


def test_compile_never_replaces_a_folder_whose_manifest_is_not_edgekits(tmp_path):
    app = _web_app(tmp_path / "app", "manifest.json")
    before = snapshot(tmp_path)
    err = one_line_error(edgekit_cli("compile", "--target", "cpu", "--out", app), 2)
    assert "is not an edgekit bundle" in err
    assert snapshot(tmp_path) == before


def test_package_never_replaces_a_folder_whose_model_json_is_not_edgekits(tiny_bundle, tmp_path):
    app = _web_app(tmp_path / "app", "model.json")
    before = snapshot(tmp_path)
    err = one_line_error(edgekit_cli("package", tiny_bundle, "--for", "linux", "--out", app), 2)
    assert "is not an edgekit app package" in err
    assert snapshot(tmp_path) == before


def test_out_that_is_a_symlink_is_refused(tmp_path):
    real = _web_app(tmp_path / "real", "index.json")
    (tmp_path / "link").symlink_to(real)
    before = snapshot(tmp_path)
    err = one_line_error(edgekit_cli("compile", "--target", "cpu", "--out", tmp_path / "link"), 2)
    assert "symbolic link" in err and snapshot(tmp_path) == before


def test_replacing_a_bundle_leaves_every_sibling_alone(tiny_bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(tiny_bundle, out)
    for sibling in ("b.old-mine", "b.partial", "b.old-123-456", "b.7-abc.partial"):  # the user's, or another run's
        (tmp_path / sibling).mkdir()
        (tmp_path / sibling / "keep.txt").write_text(sibling)
    before = snapshot(tmp_path, skip=("b",))
    p = edgekit_cli("compile", "--model", f"{TINY_CNN}:make", "--target", "cpu", "--out", out)
    assert p.returncode == 0, p.stderr
    assert snapshot(tmp_path, skip=("b",)) == before  # siblings untouched, no lock or staging left
    assert "note: " in p.stderr and "b.old-123-456" in p.stderr  # the leftovers are named, not removed


def test_a_folder_created_at_out_while_compiling_is_not_replaced(tmp_path):
    """The folder at OUT is checked again under the lock right before the rename."""
    out = tmp_path / "b"
    w = BundleWriter(out)
    (w.path("x.txt")).write_text("staged")
    _web_app(out, "index.json")  # someone else's folder appears meanwhile
    with pytest.raises(UsageError, match="appeared while this run was working") as e:
        w.publish('{"schema": "edgekit.bundle/1"}')
    assert str(w.stage) in e.value.hint
    assert (out / "index.html").read_text() == "<h1>my app</h1>" and not (out / "x.txt").exists()
    assert not (tmp_path / "b.edgekit.lock").exists()  # released on the way out
