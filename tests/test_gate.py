"""The gate command: pass on identical artifacts, fail on real extra work, clear usage errors.

Decisions here use large effects only (a 4x heavier model); the false-alarm and detection rates
at realistic effect sizes are measured by benchmarks/gate_power.py, not asserted in unit tests.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import edgekit as run

pytestmark = [pytest.mark.onnxruntime, pytest.mark.timing]

FAST = ["--blocks", "20", "--block-seconds", "0.03"]


def _mlp(path, layers, width=256):
    import torch

    torch.manual_seed(0)
    seq = []
    for _ in range(layers):
        seq += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    torch.onnx.export(torch.nn.Sequential(*seq).eval(), (torch.randn(8, width),), str(path), dynamo=True,
                      external_data=False)
    return path


def test_identical_bundles_pass_with_markdown(digits_bundle, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(digits_bundle, twin)
    md = tmp_path / "gate.md"
    p = run("gate", "--baseline", digits_bundle, "--candidate", twin, *FAST, "--markdown", md,
            "--json", tmp_path / "g.json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "edgekit gate: **pass**" in md.read_text() and "| size | ok |" in md.read_text()
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["regression"] is False and 0.8 < g["attempts"][0]["ratio"] < 1.25


def test_real_extra_work_is_a_confirmed_regression(tmp_path):
    base, heavy = _mlp(tmp_path / "base.onnx", 4), _mlp(tmp_path / "heavy.onnx", 16)
    p = run("gate", "--baseline", base, "--candidate", heavy, *FAST, "--max-size-growth", "10",
            "--json", tmp_path / "g.json")
    assert p.returncode == 1, p.stdout + p.stderr
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["latency_regression"] is True and len(g["attempts"]) == 2  # flagged, then confirmed
    assert all(a["ratio"] > 2 and a["ci"][0] > 1 for a in g["attempts"])
    assert "REGRESSION" in p.stdout and "confirmed by a rerun" in p.stdout


def test_size_regression_is_deterministic(tmp_path):
    base, bigger = _mlp(tmp_path / "base.onnx", 4), _mlp(tmp_path / "bigger.onnx", 5)
    p = run("gate", "--baseline", base, "--candidate", bigger, *FAST, "--min-effect", "0.5", "--json", tmp_path / "g.json")
    g = json.loads((tmp_path / "g.json").read_text())
    assert p.returncode == 1 and not g["latency_regression"]
    assert [c["ok"] for c in g["checks"] if c["name"] == "size"] == [False]


def test_usage_errors_exit_2(digits_bundle, tmp_path):
    other = _mlp(tmp_path / "other.onnx", 1)
    cases = [
        (["--baseline", tmp_path / "nope", "--candidate", digits_bundle], "not a bundle"),
        (["--baseline", digits_bundle, "--candidate", other], "different inputs"),
        (["--candidate", digits_bundle], "exactly one of"),
        (["--baseline", digits_bundle, "--candidate", digits_bundle, "--blocks", "2"], "at least 5"),
        (["--baseline-file", tmp_path / "missing.json", "--candidate", digits_bundle], "bench JSON"),
    ]
    for args, msg in cases:
        p = run("gate", *args)
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)


def test_baseline_file_mode_prints_the_caveat(digits_bundle, tmp_path):
    stored = tmp_path / "device.json"
    assert run("bench", digits_bundle, "--keep-samples", "--min-runs", "200", "--json", stored).returncode == 0
    samples = json.loads(stored.read_text())["samples_ms"]
    assert len(samples) >= 200 and np.all(np.asarray(samples) > 0)
    p = run("gate", "--baseline-file", stored, "--candidate", digits_bundle)
    assert p.returncode in (0, 1) and "not interleaved" in p.stdout, p.stdout + p.stderr
    # a stored baseline 3x faster than reality must be flagged
    fast = json.loads(stored.read_text())
    fast["samples_ms"] = [s / 3 for s in samples]
    stored.write_text(json.dumps(fast))
    p = run("gate", "--baseline-file", stored, "--candidate", digits_bundle)
    assert p.returncode == 1 and "REGRESSION" in p.stdout
