"""`compile --distill-from`: distillation as a pipeline stage before compile, real training."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import edgekit

pytestmark = [pytest.mark.onnxruntime]


# distill's training uses torch's default threads; on a busy 2-core machine two threads made one
# 15-epoch seed take 136 s instead of 3.7 s (builtin/digits.py pins one thread for the same reason).
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_compile_distill_from_trains_compiles_and_records(tmp_path):
    """digits -> digits-small, 15 epochs (the distill tests' recipe is 60; 15 keeps this cheap and
    still lands within a few points of the teacher), compiled for cpu and verified; the manifest's
    record matches the real models and the weights in the bundle."""
    from edgekit.bundle import open_bundle
    from edgekit.sources import load_model
    from edgekit.sources.factory import module_sha256

    b = tmp_path / "b"
    p = edgekit("compile", "--model", "builtin:digits-small", "--distill-from", "builtin:digits",
                "--distill-epochs", "15", "--target", "cpu", "--out", b, check=True, env=ONE_THREAD)
    m = open_bundle(b)  # complete, every listed file intact
    assert m.usable()[0].verification.status == "passed"
    d = m.model["distillation"]
    assert (d["teacher"]["spec"], d["student"]["spec"]) == ("builtin:digits", "builtin:digits-small")
    assert d["seeds"] == 1 and d["method"]["epochs"] == 15 and d["transfer_data"]["samples"] == 1200
    assert d["held_out"]["samples"] == m.model["verify_samples"] == 397

    # the numbers are the real models': parameter counts, and the student in the bundle is the one compiled
    teacher = load_model("builtin:digits").module
    student = load_model("builtin:digits-small", weights=str(b / "distill/student.pt")).module
    assert d["teacher"]["params"] == sum(p.numel() for p in teacher.parameters()) == 38282
    assert d["student"]["params"] == sum(p.numel() for p in student.parameters()) == 7666
    assert m.model["sha256"] == module_sha256(student)
    acc_t, acc_s = d["teacher"]["held_out"]["accuracy"], d["student"]["held_out"]["accuracy"]
    assert acc_t >= 0.95 and acc_t - 0.05 <= acc_s <= 1.0, (acc_t, acc_s)
    assert acc_s == pytest.approx(m.model["source_accuracy"])  # same held-out data, same weights
    assert 0.0 <= d["student"]["baseline"]["accuracy"] <= 1.0  # the same student on labels alone
    assert d["student"]["latency_ms"] > 0 and d["student"]["state_dict_bytes"] * 4 < d["teacher"]["state_dict_bytes"]
    assert d["weights"] == {"path": "distill/student.pt", "sha256": _sha256(b / "distill/student.pt"),
                            "size_bytes": (b / "distill/student.pt").stat().st_size}
    assert d["report"]["sha256"] == _sha256(b / "distill/report.json")
    assert json.loads((b / "distill/report.json").read_text())["student"]["seed"] == d["student"]["seed"] == 0
    assert "distilled from builtin:digits" in p.stdout and "7,666" in p.stdout

    # a stage that fails (transfer data of the wrong shape) leaves the previous bundle as it was
    before = (b / "manifest.json").read_bytes()
    np.save(tmp_path / "bad.npy", np.zeros((5, 3), np.float32))
    p = edgekit("compile", "--model", "builtin:digits-small", "--distill-from", "builtin:digits",
                "--distill-data", tmp_path / "bad.npy", "--target", "cpu", "--out", b, env=ONE_THREAD)
    assert p.returncode != 0 and "does not fit the model input" in p.stderr, p.stderr
    assert (b / "manifest.json").read_bytes() == before
    assert open_bundle(b).model["distillation"]["weights"]["sha256"] == d["weights"]["sha256"]


@pytest.mark.parametrize("extra, says", [
    (["--model", "builtin:digits-small", "--distill-from", "builtin:digits", "--weights", "w.pt"], "use one"),
    (["--model", "builtin:digits-small", "--distill-epochs", "5"], "--distill-epochs given without --distill-from"),
    (["--model", "builtin:digits-small", "--distill-from", "builtin:digitz"], 'did you mean "digits"'),
    (["--model", "builtin:digits", "--distill-from", "builtin:digits"], "cannot be a student"),
    (["--model", "builtin:digits-small", "--distill-from", "builtin:digits", "--distill-seeds", "0"],
     "at least 1"),
    (["--model", "builtin:digits-small", "--distill-from", "builtin:digits", "--distill-epochs", "5",
      "--distill-steps", "5"], "not allowed with"),
])
def test_distill_stage_usage_errors_before_any_work(tmp_path, extra, says):
    p = edgekit("compile", "--target", "cpu", "--out", tmp_path / "b", *extra, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    assert p.stderr.startswith("edgekit: error: ") and says in p.stderr, p.stderr
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob("b.*partial")) and not (tmp_path / "b.edgekit.lock").exists()
