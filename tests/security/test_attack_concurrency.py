"""Class 4: a compile's child steps die with it, and one OUT has one writer at a time. Before: a step
outlived a killed compile and kept writing into OUT.partial (a rerun with another model then
published the first model, exit 0), and two compiles to one --out shared a staging folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from attack import edgekit_cli, one_line_error
from conftest import TINY_CNN

pytestmark = [pytest.mark.onnxruntime]

SLOW = '''
import os, time
from pathlib import Path
import torch
HERE = Path(__file__).parent

def make():
    (HERE / "child.pid").write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("SLOW_FACTORY_S", "6")))
    (HERE / "LATE-WRITE").write_text("this step outlived its compile")
    return torch.nn.Linear(4, 2).eval(), torch.randn(1, 4)
'''


@pytest.fixture
def slow_model(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    return tmp_path


def _wait_for(path, timeout=60.0):
    t0 = time.monotonic()
    while not path.exists():
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead for our purpose
        return f.read().split(")")[-1].split()[0] != "Z"


def test_killing_the_compile_kills_its_steps_and_a_rerun_publishes_the_rerun(slow_model):
    out = slow_model / "b"
    p = subprocess.Popen([sys.executable, "-m", "edgekit", "compile", "--model", f"{slow_model / 'slow.py'}:make",
                          "--target", "cpu", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(slow_model / "child.pid")
    child = int((slow_model / "child.pid").read_text())
    os.kill(p.pid, signal.SIGKILL)  # the compile only, as an OOM killer or `kill -9 PID` would
    p.wait()
    t0 = time.monotonic()
    while _alive(child) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert not _alive(child), "the prepare step outlived its compile"
    time.sleep(7)  # past the moment the step would have written
    assert not (slow_model / "LATE-WRITE").exists()
    r = edgekit_cli("compile", "--model", f"{TINY_CNN}:make", "--target", "cpu", "--out", out)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "manifest.json").read_text())["model"]["name"] == "tiny_cnn"
    assert not (slow_model / "LATE-WRITE").exists()


def test_a_second_compile_to_the_same_out_is_refused_while_the_first_runs(slow_model):
    out = slow_model / "b"
    first = subprocess.Popen([sys.executable, "-m", "edgekit", "compile", "--model",
                              f"{slow_model / 'slow.py'}:make", "--target", "cpu", "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "SLOW_FACTORY_S": "4"})
    _wait_for(slow_model / "b.edgekit.lock")
    err = one_line_error(edgekit_cli("compile", "--model", f"{TINY_CNN}:make", "--target", "cpu", "--out", out), 2)
    assert f"being written by another edgekit run (pid {first.pid})" in err
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert json.loads((out / "manifest.json").read_text())["model"]["name"] == "slow"
    assert not (slow_model / "b.edgekit.lock").exists() and not list(slow_model.glob("b.*partial"))
