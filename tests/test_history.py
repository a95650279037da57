"""History database and the change-point check: real SQLite, real bench runs, real processes."""
from __future__ import annotations

import json
import math
import multiprocessing
import random
import sqlite3
from pathlib import Path

import pytest

from conftest import edgekit

from edgekit import history

pytestmark = [pytest.mark.onnxruntime]


def noisy(n: int, seed: int, noise: float = 0.03, step_at: int | None = None, step: float = 1.0,
          creep: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [10.0 * math.exp(rng.gauss(0, noise)) * (step if step_at is not None and i >= step_at else 1.0)
            * creep ** i for i in range(n)]


def test_change_point_is_silent_on_flat_noisy_series():
    flagged = [s for s in range(200) if history.change_point(noisy(40, s)) is not None]
    assert flagged == []


def test_change_point_finds_an_injected_step():
    cp = history.change_point(noisy(40, seed=7, step_at=25, step=1.10))
    assert cp is not None and 23 <= cp["index"] <= 27 and 1.06 < cp["ratio"] < 1.14, cp


def test_change_point_finds_slow_creep_that_an_ab_gate_misses():
    values = noisy(40, seed=3, noise=0.01, creep=1.01)
    # consecutive runs differ by ~1 %: an A/B gate with a 5 % minimum effect never fires on any pair
    assert max(abs(b / a - 1) for a, b in zip(values, values[1:])) < 0.05
    cp = history.change_point(values)
    assert cp is not None and cp["ratio"] > 1.15, cp


def test_bench_results_accumulate_and_history_shows_them(digits_bundle, tmp_path):
    db = tmp_path / "h.sqlite"
    for _ in range(2):  # two "sweeps" over time
        edgekit("bench", digits_bundle, "--all", "--history", db, "--min-runs", "10", "--min-time", "0.1", check=True)
    out = tmp_path / "h.json"
    p = edgekit("history", "--history", db, "--model", "digits", "--json", out, check=True)
    series = json.loads(out.read_text())
    assert {s["artifact"] for s in series} == {"onnxruntime-fp32", "onnxruntime-fp32-plain", "torchscript-lite-fp32"}
    assert all(len(s["runs"]) == 2 and all(r["p50_ms"] > 0 for r in s["runs"]) for s in series)
    assert "digits" in p.stdout and "change point" in p.stdout
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT model_sha256, target, edgekit_version, toolchains, environment FROM results "
                        "LIMIT 1").fetchone()
    assert len(row[0]) == 64 and row[1] == "cpu" and row[2] and json.loads(row[3]) and json.loads(row[4])
    # verify results go in too; --no-history writes nothing
    edgekit("verify", digits_bundle, "--history", db, check=True)
    edgekit("bench", digits_bundle, "--history", db, "--no-history", "--min-runs", "5", "--min-time", "0.05",
            check=True)
    with sqlite3.connect(db) as c:
        kinds = dict(c.execute("SELECT kind, count(*) FROM results GROUP BY kind").fetchall())
    assert kinds == {"bench": 6, "verify": 3}


def _writer(args):
    db, worker, bundle = args
    from edgekit.bundle import open_bundle

    m = open_bundle(Path(bundle))
    wrote = 0
    for i in range(25):
        r = {"artifact": "onnxruntime-fp32", "latency_ms": {"p50": 1.0 + worker + i / 100}, "run": i, "worker": worker}
        wrote += history.record("bench", r, m, db)
        wrote += history.record("bench", r, m, db)  # the same result again: never stored twice
    return wrote


def test_concurrent_writers_lose_nothing_and_store_nothing_twice(digits_bundle, tmp_path):
    db = tmp_path / "c.sqlite"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        wrote = pool.map(_writer, [(db, w, str(digits_bundle)) for w in range(4)])
    assert wrote == [25, 25, 25, 25]
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*), count(DISTINCT result_key) FROM results").fetchone() == (100, 100)
