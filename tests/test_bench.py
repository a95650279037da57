"""bench --json: the documented fields, sane orderings. No speed claims here (see benchmarks/)."""
from __future__ import annotations

import json

import pytest

from conftest import edgekit as run

pytestmark = [pytest.mark.onnxruntime, pytest.mark.torchscript_lite]


def test_bench_json_fields(digits_bundle, tmp_path):
    out = tmp_path / "bench.json"
    p = run("bench", digits_bundle, "--json", out)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    lat = r["latency_ms"]
    assert set(lat) == {"p50", "p90", "p99", "mean", "std", "min", "max"}
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert r["runs"] >= 50
    assert r["timed_s"] >= 1.0 and r["notes"] == []  # >= 1 s of timed runs, not cut short
    for key in ("load_ms", "first_run_ms", "peak_rss_mb", "size_bytes"):
        assert r[key] > 0, key
    env = r["env"]
    assert env["threads"] == 1 and env["runtime"] == "onnxruntime" and env["runtime_version"]
    assert env["cpu"]["model"] and env["edgekit"] and isinstance(env["cpu"]["flags"], list)
    assert r["measured_on"] == "target"  # the cpu target is this machine
    assert "p50 ms" in p.stdout  # the readable table


def test_bench_threads_option_and_json_into_new_folder(digits_bundle, tmp_path):
    out = tmp_path / "new" / "dir" / "b.json"
    p = run("bench", digits_bundle, "--threads", "2", "--min-runs", "60", "--json", out)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["threads"] == 2 and r["env"]["threads"] == 2 and r["runs"] >= 60


def test_bench_unknown_artifact(digits_bundle):
    p = run("bench", digits_bundle, "--artifact", "onnxruntime-fp33")
    assert p.returncode == 2 and 'did you mean "onnxruntime-fp32"' in p.stderr
