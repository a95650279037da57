"""A compile killed at any moment never leaves a bundle that loads as complete, and never
destroys the previous good bundle."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import edgekit
from edgekit.bundle import open_bundle
from edgekit.errors import BundleError
from edgekit.manifest import Manifest

from conftest import TINY_CNN

pytestmark = [pytest.mark.onnxruntime, pytest.mark.torchscript_lite]


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
    for partial in tmp_path.glob("b.*.partial"):  # this run's own staging folder
        with pytest.raises(BundleError, match="unfinished compile"):
            open_bundle(partial)


def _compile_tiny(out, **env):
    import os

    return subprocess.run([sys.executable, "-m", "edgekit", "compile", "--model", f"{TINY_CNN}:make", "--target", "cpu",
                           "--out", str(out)], capture_output=True, text=True, env={**os.environ, **env})


@pytest.mark.parametrize("point", ["before-manifest", "before-rename", "between-renames"])
def test_crash_inside_publish_never_loses_the_previous_bundle(tmp_path, tiny_bundle, point):
    """SIGKILL at each step of publishing a replacement: the old bundle stays complete and
    findable; nothing half-written is ever accepted. (The tiny CNN: publishing is the same code
    for every model, and its compile is the cheapest that builds every cpu artifact.)"""
    import shutil

    out = tmp_path / "b"
    shutil.copytree(tiny_bundle, out)
    before = (out / "manifest.json").read_text()
    p = _compile_tiny(out, EDGEKIT_TEST_CRASH_AT=point)
    assert p.returncode == -signal.SIGKILL, p.stderr
    if point == "between-renames":
        with pytest.raises(BundleError, match="interrupted while replacing it"):
            edgekit.load(out)
        (old,) = tmp_path.glob("b.old-*")
        assert (old / "manifest.json").read_text() == before
        edgekit.load(old)  # the previous bundle, complete and intact, where the message says
    else:
        assert (out / "manifest.json").read_text() == before
        edgekit.load(out)
        (partial,) = tmp_path.glob("b.*.partial")
        with pytest.raises(BundleError, match="unfinished compile"):
            open_bundle(partial)
    if point != "between-renames":
        return  # the recovery below is the same for every point: one compile proves it
    # The next compile publishes normally. It removes only what it made itself: the previous bundle
    # the crashed run moved aside and that run's staging folder stay, named in notes, for the user.
    (staged,) = tmp_path.glob("b.*.partial")
    p = _compile_tiny(out)
    assert p.returncode == 0, p.stderr
    edgekit.load(out)
    assert [x.name for x in tmp_path.glob("b.old-*")] == [old.name] and f"note: {old}" in p.stderr
    assert list(tmp_path.glob("b.*.partial")) == [staged] and f"note: {staged}" in p.stderr


def test_out_that_is_not_a_bundle_is_never_replaced(tmp_path):
    precious = tmp_path / "src"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    p = subprocess.run([sys.executable, "-m", "edgekit", "compile", "--target", "cpu", "--out", str(precious)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "is not an edgekit bundle" in p.stderr
    assert (precious / "notes.txt").read_text() == "keep me"


def test_manifest_not_marked_complete_is_refused(tmp_path):
    m = Manifest(model={}, target={}, artifacts=[])
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "manifest.json").write_text(m.to_json())  # complete is False
    with pytest.raises(BundleError, match="incomplete"):
        open_bundle(tmp_path / "y")
