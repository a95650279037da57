"""A compile killed at any moment never leaves a bundle that loads as complete, and never
destroys the previous good bundle."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

import edgekit
from edgekit.bundle import BundleWriter, open_bundle
from edgekit.errors import BundleError
from edgekit.manifest import Manifest


def _start_compile(out):
    return subprocess.Popen([sys.executable, "-m", "edgekit", "compile", "--target", "cpu", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.parametrize("delay", [0.5, 3.0, 6.0, 9.0])
def test_sigkill_mid_compile_leaves_nothing_loadable(tmp_path, delay):
    out = tmp_path / "b"
    p = _start_compile(out)
    time.sleep(delay)
    finished = p.poll() is not None
    import os

    if not finished:
        os.killpg(p.pid, signal.SIGKILL)  # the CLI and its child step
    p.wait()
    if finished:  # the machine was fast: then the bundle must be complete and intact
        edgekit.load(out)
        return
    with pytest.raises(BundleError):
        edgekit.load(out)
    partial = tmp_path / "b.partial"
    if partial.exists():
        with pytest.raises(BundleError, match="unfinished compile"):
            open_bundle(partial)


def test_killed_recompile_keeps_previous_bundle(tmp_path, digits_bundle):
    import shutil

    out = tmp_path / "b"
    shutil.copytree(digits_bundle, out)
    before = json.loads((out / "manifest.json").read_text())
    p = _start_compile(out)
    time.sleep(4.0)
    import os

    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert json.loads((out / "manifest.json").read_text()) == before
    edgekit.load(out)  # still complete, every hash still matches


def test_writer_never_publishes_without_manifest(tmp_path):
    w = BundleWriter(tmp_path / "x")
    w.path("artifacts/a.onnx").write_bytes(b"half")
    # no publish(): a crash here
    assert not (tmp_path / "x").exists()
    with pytest.raises(BundleError):
        open_bundle(tmp_path / "x.partial")
    m = Manifest(model={}, target={}, artifacts=[])
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "manifest.json").write_text(m.to_json())  # complete is False
    with pytest.raises(BundleError, match="incomplete"):
        open_bundle(tmp_path / "y")
