"""`edgekit sweep`: a real matrix, run by the local executor and on a real local Ray cluster
(head + worker started by the test on 127.0.0.1), with a Ray worker killed mid-sweep."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import TINY_MODEL, edgekit, needs

BENCH = "[bench]\nmin_runs = 20\nmin_time = 0.1\nwarmup = 0.1\n"
# What must agree between executors: everything but the latency itself.
SAME = ("model", "target", "precision", "device", "status", "primary", "verified", "size_bytes", "cosine", "accuracy")


def _matrix(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "matrix.toml"
    p.write_text(body)
    return p


@pytest.mark.parametrize("body, says", [
    ('models = ["builtin:digits"]\ntargets = ["cpu"]\nprecison = ["fp32"]\n', 'did you mean "precisions"'),
    ('models = ["builtin:digits"]\ntargets = ["cpux"]\n', "did you mean"),
    ('models = ["builtin:digitz"]\ntargets = ["cpu"]\n', 'did you mean "digits"'),
    ('models = ["builtin:digits"]\ntargets = ["cpu-tvm"]\nprecisions = ["fp16"]\n', "no target offers any of the precisions"),
    ('models = "builtin:digits"\ntargets = ["cpu"]\n', "'models' must be a non-empty list of strings"),
    ('models = ["builtin:digits"\n', "not valid TOML"),
    ('models = ["builtin:digits"]\ntargets = ["cpu"]\n[bench]\nmin_run = 3\n', 'did you mean "min_runs"'),
])
def test_bad_matrix_is_refused_before_any_work(tmp_path, body, says):
    out = tmp_path / "out"
    p = edgekit("sweep", _matrix(tmp_path, body), "--out", out)
    assert p.returncode == 2 and says in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not out.exists()


def test_a_device_without_an_address_fails_its_cells_clearly(tmp_path):
    m = _matrix(tmp_path, 'models = ["builtin:digits"]\ntargets = ["cpu"]\ndevices = ["pi5"]\n')
    p = edgekit("sweep", m, "--out", tmp_path / "out", "--json", tmp_path / "rows.json")
    assert p.returncode == 6, p.stderr
    (row,) = json.loads((tmp_path / "rows.json").read_text())
    assert row["status"] == "failed" and "device 'pi5' has no ssh address" in row["error"]


@pytest.mark.ray
def test_an_unreachable_ray_cluster_fails_in_seconds(tmp_path):
    m = _matrix(tmp_path, 'models = ["builtin:digits"]\ntargets = ["cpu"]\n')
    t0 = time.time()
    p = edgekit("sweep", m, "--ray", f"127.0.0.1:{_free_port()}", "--out", tmp_path / "out", "--no-history")
    assert p.returncode == 10 and "no Ray cluster at 127.0.0.1:" in p.stderr and "ray start --head" in p.stderr
    assert time.time() - t0 < 60 and not (tmp_path / "out").exists()  # ray.init alone waits minutes


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A real two-node Ray cluster on this machine: a head and one worker node, one CPU each (so
    two cells run at once, one per node), started and stopped here."""
    ray = Path(sys.executable).parent / "ray"
    temp = tempfile.mkdtemp(prefix="ekray-", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp,
                    *common], check=True, env=env, capture_output=True, timeout=120)
    try:
        subprocess.run([ray, "start", "--address", f"127.0.0.1:{port}", *common], check=True, env=env,
                       capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


def _kill_one_cell_worker(deadline: float) -> int | None:
    """SIGKILL the first Ray worker process found running a cell (its title is ray::run_cell)."""
    while time.time() < deadline:
        pids = subprocess.run(["pgrep", "-f", "^ray::run_cell"], capture_output=True, text=True).stdout.split()
        if pids:
            time.sleep(1.0)  # let it get into the compile
            os.kill(int(pids[0]), signal.SIGKILL)
            return int(pids[0])
        time.sleep(0.2)
    return None


# On `cpu` (the host is the target) a named precision's primary is the fastest verified artifact,
# timed in each run: the tiny CNN's ONNX Runtime and LiteRT FP32 are within noise of each other,
# so the primary (and its size) may differ between two sweeps; elsewhere the preference order decides.
TIMED = ("primary", "size_bytes")


def _rows(path: Path) -> list[dict]:
    return [{k: r[k] for k in SAME if not (r["target"] == "cpu" and k in TIMED)} for r in json.loads(path.read_text())]


@pytest.mark.slow
@needs("ray", "litert-torch", "ai-edge-litert")
@pytest.mark.ray
@pytest.mark.onnxruntime
@pytest.mark.litert
def test_local_and_ray_sweeps_agree_and_a_killed_worker_loses_nothing(tmp_path, ray_cluster):
    # The tiny CNN at INT8 on two targets: 2 cells, one of which fails, one on each Ray node (an FP32
    # cell per target too cost two more compiles and minutes of CI for nothing this test checks).
    model = tmp_path / "tiny_model.py"
    model.write_text(TINY_MODEL)
    matrix = _matrix(tmp_path, f'name = "t"\nmodels = ["{model}:make"]\ntargets = ["cpu", "rpi"]\n'
                               f'precisions = ["int8"]\n{BENCH}')
    db = tmp_path / "history.sqlite"

    local = edgekit("sweep", matrix, "--out", tmp_path / "local", "--workers", "2", "--history", db,
                    "--json", tmp_path / "local.json")
    # 12: some cells failed (the tiny CNN's INT8 LiteRT misses the tolerance without calibration data)
    assert local.returncode == 12, local.stderr
    rows = _rows(tmp_path / "local.json")
    assert len(rows) == 2 and sum(r["status"] == "ok" for r in rows) == 1, rows
    failed = next(r for r in json.loads((tmp_path / "local.json").read_text()) if r["status"] == "failed")
    assert (failed["target"], failed["precision"]) == ("rpi", "int8") and "cosine" in failed["error"]

    cmd = [sys.executable, "-m", "edgekit", "sweep", str(matrix), "--out", str(tmp_path / "ray"), "--ray", ray_cluster,
           "--force", "--history", str(db), "--json", str(tmp_path / "ray.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = _kill_one_cell_worker(time.time() + 120)
    out, err = proc.communicate(timeout=900)
    assert killed is not None, "no Ray worker was running a cell"
    assert proc.returncode == 12, err
    assert _rows(tmp_path / "ray.json") == rows  # same results table as the local executor

    cells = json.loads((tmp_path / "ray" / "sweep.json").read_text())["cells"]
    assert all(c["ray_node"] for c in cells) and len({c["ray_node"] for c in cells}) == 2  # both nodes ran cells
    assert max(c["attempts"] for c in cells) >= 2  # the killed cell ran again
    assert not subprocess.run(["pgrep", "-f", "--", f"--out {tmp_path}"], capture_output=True).stdout  # no orphans

    ray_sweep, benched = cells[0]["sweep"], sum(len(c["bench"]) for c in cells)
    with sqlite3.connect(db) as con:
        per_sweep = con.execute("SELECT sweep, COUNT(*) FROM sweep_cells GROUP BY sweep").fetchall()
        stored = [(m, t, a) for m, t, a, p in con.execute("SELECT model, target, artifact, payload FROM results "
                                                          "WHERE kind = 'bench'") if json.loads(p)["sweep"] == ray_sweep]
    assert sorted(n for _, n in per_sweep) == [2, 2]  # every cell of both sweeps, each once
    assert len(stored) == len(set(stored)) == benched  # every bench result of the Ray sweep, once

    hist = edgekit("history", "--history", db, "--model", "tiny_model", "--target", "cpu", "--json", tmp_path / "h.json")
    assert hist.returncode == 0, hist.stderr
    series = {s["artifact"]: s for s in json.loads((tmp_path / "h.json").read_text())}
    assert len(series["onnxruntime-int8"]["runs"]) == 2  # one point per sweep

    # Unchanged inputs: the rerun runs only the failed cell again and reuses every stored success.
    again = edgekit("sweep", matrix, "--out", tmp_path / "ray", "--ray", ray_cluster, "--history", db,
                    "--json", tmp_path / "again.json")
    assert "1 to run" in again.stderr and "1 unchanged" in again.stderr, again.stderr
    assert [r for r in _rows(tmp_path / "again.json") if r["status"] == "ok"] == [r for r in rows if r["status"] == "ok"]

    rep = edgekit("report", "--sweep", tmp_path / "ray" / "sweep.json", "--history", db, "--html", tmp_path / "r.html")
    assert rep.returncode == 0, rep.stderr
    page = (tmp_path / "r.html").read_text()
    assert page.count("<tr data-artifact=") == benched and "id='history'" in page
