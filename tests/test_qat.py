"""Quantization-aware fine-tuning (compile --qat, converters/qat.py) of the PT2E INT8 graph: the
frozen fake quantizers reproduce the post-training graph exactly before training, fine-tuning
lowers the error against the FP32 model on samples it never saw, and --precision auto fine-tunes
where post-training misses (on calibration, or held-out verification: then the compile records both).
`--qat STEPS` runs the same converter path as auto's second try (qat_steps), so one compile tests both."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import edgekit, import_file
from test_pt2e_int8 import GALLERY, _samples

pytestmark = [pytest.mark.executorch]


def _prepared(model, example, calib):
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from edgekit.converters import pt2e
    from edgekit.converters.executorch import _quantizer

    exported = torch.export.export(model, (torch.from_numpy(example["x"]),)).module()
    prepared = prepare_pt2e(exported, pt2e.float_only(_quantizer(False)))
    with torch.no_grad():
        for s in calib:
            prepared(torch.from_numpy(s["x"]))
    return prepared


def test_fake_quantizers_start_where_calibration_ended_and_fine_tuning_helps_held_out():
    import copy

    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from edgekit.converters import pt2e, qat

    model, example = import_file(GALLERY).relu6()
    calib, held_out = _samples(32, 0), _samples(32, 1)
    prepared = _prepared(model, example, calib)
    ptq = convert_pt2e(copy.deepcopy(prepared))
    swapped = qat.freeze_observers_as_fake_quant(prepared)
    assert swapped > 4
    # Before any step, the fake-quantized graph is the post-training INT8 graph (same qparams).
    fq_out, ptq_out = pt2e._outputs(prepared, held_out), pt2e._outputs(ptq, held_out)
    assert np.abs(fq_out - ptq_out).max() <= 1e-3 * np.abs(ptq_out).max()

    few = [(torch.from_numpy(s["x"]),) for s in calib[:qat.MIN_SAMPLES - 1]]
    skipped = qat.finetune(_prepared(model, example, calib), model, few, steps=5)  # would fit those alone
    assert skipped["steps"] == 0 and "give --calibration" in skipped["skipped"]

    prepared = _prepared(model, example, calib)
    record = qat.finetune(prepared, model, [(torch.from_numpy(s["x"]),) for s in calib], steps=40)
    assert record["steps"] == 40 and record["loss_end"] < record["loss_start"]
    assert record["data"].startswith("32 calibration samples, blended")
    tuned = convert_pt2e(prepared)
    ref = pt2e._outputs(model, held_out)
    err_ptq, err_qat = (float(np.std(pt2e._outputs(m, held_out) - ref)) for m in (ptq, tuned))
    assert err_qat < 0.9 * err_ptq, (err_qat, err_ptq)


def test_qat_needs_a_fine_tuning_int8_candidate(tmp_path):
    r = edgekit("compile", "--target", "browser", "--qat", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "--qat fine-tunes INT8 candidates" in r.stderr
    assert "targets that have them: android, cpu" in r.stderr
    assert not (tmp_path / "b").exists()
    r = edgekit("compile", "--target", "android", "--qat", "-1", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "must be 0 (never fine-tune) or more" in r.stderr and not (tmp_path / "b").exists()
    r = edgekit("compile", "--target", "androi", "--qat", "0", "--out", str(tmp_path / "b"))  # 0: never fine-tune
    assert r.returncode == 2 and "did you mean" in r.stderr and "--qat" not in r.stderr, r.stderr


def test_precision_auto_fine_tunes_only_when_post_training_misses_and_judges_on_held_back_samples(monkeypatch):
    """compile --precision auto: quantize(qat_when_missed=True) fine-tunes when every post-training
    variant misses the tolerance (here forced: cosine 1.0), on three quarters of the calibration
    samples, and ships whichever variant is closest on the quarter held back."""
    from edgekit.converters import pt2e, qat
    from edgekit.converters.executorch import _quantizer

    monkeypatch.setattr(qat, "STEPS", 10)
    model, example = import_file(GALLERY).relu6()
    calib = _samples(16, 0)
    kw = {"mixed_precision": "not searched in this test", "dynamic_unsupported": pt2e.has_convolutions,
          "qat_when_missed": True}
    _, _, info = pt2e.quantize(model, example, calib, _quantizer, 0.5, **kw)
    assert "qat_when_missed" not in info and "qat" not in info  # post-training met the tolerance: no training

    _, _, info = pt2e.quantize(model, example, calib, _quantizer, 1.0, **kw)
    auto = info["qat_when_missed"]
    assert auto["trained_on"] == 12 and auto["held_back"] == 4 and "missed the tolerance 1.0" in auto["why"]
    scores = auto["cosine_on_held_back"]
    assert set(scores) == {"static", pt2e.FINE_TUNED} and all(0.9 < c < 1.0 for c in scores.values())
    assert auto["chose"] == info["mode"] == max(scores, key=scores.get)
    record = info["qat"] if info["mode"] == pt2e.FINE_TUNED else auto["qat"]
    assert record["steps"] == 10 and record["data"].startswith("12 calibration samples")

    _, _, info = pt2e.quantize(model, example, calib[:9], _quantizer, 1.0, **kw)  # 7 to train on: too few
    assert "too few to fine-tune" in info["qat_when_missed"]["skipped"] and info["mode"] == "static"


@pytest.mark.litert
def test_precision_auto_fine_tunes_an_artifact_that_failed_held_out_and_ships_it_only_if_it_passes(
        tmp_path, monkeypatch, capsys):
    """compile --precision auto (edgekit.qat_policy): a LiteRT or ExecuTorch INT8 artifact that met the
    calibration cosine and then failed held-out verification is built again fine-tuned and verified
    again. The real toolchains and runtimes run; only the tolerance is the test's: the first build of
    each candidate is judged against an unreachable SNR (so it fails held-out, as EfficientNet-Lite0's
    top-1 did), LiteRT's second try against the profile's own tolerance (it passes and replaces the
    post-training file), ExecuTorch's against the unreachable one again (it fails: post-training stays)."""
    from dataclasses import fields, replace

    from edgekit import pipeline, qat_policy
    from edgekit.bundle import open_bundle
    from edgekit.profiles import TargetProfile

    monkeypatch.setattr(qat_policy, "STEPS", 10)
    android = pipeline.get_profile("android")
    int8 = tuple(c for c in android.candidates if qat_policy.fine_tunes(c))
    assert [c.runtime for c in int8] == ["litert", "executorch"]  # the order the tolerances below assume
    strict = replace(android.tolerance("int8"), snr_min_db=200.0)
    judged = iter([strict, android.tolerance("int8"), strict, strict])

    class TwoTries(TargetProfile):
        def tolerance(self, precision):
            return next(judged)

    profile = TwoTries(**{f.name: getattr(android, f.name) for f in fields(android)})
    monkeypatch.setattr(pipeline, "get_profile", lambda target: replace(profile, candidates=int8))
    out, manifest = pipeline.compile_model("builtin:digits", "android", out=str(tmp_path / "b"), precision="auto")
    said = capsys.readouterr().err
    assert said.count("post-training INT8 failed held-out verification; --precision auto fine-tunes it") == 2
    assert "litert-int8: fine-tuned: verification passed" in said
    assert "executorch-int8: fine-tuned: verification failed" in said and "the post-training artifact stays" in said
    arts = {a.runtime: a for a in manifest.artifacts}

    lite = arts["litert"]
    record = lite.converter["second_try"]
    assert record["shipped"] == "fine-tuned" and record["post_training"]["status"] == "failed"
    assert "SNR" in record["post_training"]["reason"] and record["fine_tuned"]["status"] == "passed"
    assert lite.verification.status == "passed" and lite.verification.samples == 397  # against FP32, held out
    tuned = lite.converter["quantization"]["qat"]  # what `compile --qat 10` records: the same converter path
    assert tuned["steps"] == 10 and tuned["loss_end"] < tuned["loss_start"] and "second try" in lite.verification.caveats[0]
    assert lite.role == "primary"

    et = arts["executorch"]
    record = et.converter["second_try"]
    assert record["shipped"] == "post-training" and record["fine_tuned"]["status"] == "failed"
    assert record["qat"]["steps"] == 10 and "qat" not in et.converter["quantization"]  # the file is post-training
    assert et.verification.status == "failed" and not et.verification.caveats
    # Each shipped file is the one its record names (hashes checked), and the second tries left nothing behind.
    open_bundle(out)
    assert sorted(p.name for p in (out / "artifacts").iterdir()) == sorted(a.path.split("/")[-1] for a in arts.values())
    r = edgekit("explain", str(out), "--artifact", lite.id)
    assert r.returncode == 0 and "fine-tuned 10 steps and verified again on the same samples" in r.stdout
    assert "post-training (failed)" in r.stdout and "fine-tuned (passed)" in r.stdout
    assert "quantization-aware fine-tuning: 10 of 10 steps" in r.stdout
