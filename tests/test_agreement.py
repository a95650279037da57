"""Top-1 agreement as counts with a Wilson interval, and flips split into near-ties and decisive ones
(edgekit.agreement), judged the same way at every precision (edgekit.verify.judge)."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.agreement import describe, top1_stats, wilson
from edgekit.profiles import DEFAULT_TOLERANCES
from edgekit.verify import judge, output_metrics


@pytest.mark.parametrize("k,n,low,high", [(47, 48, 0.8910, 0.9963), (48, 48, 0.9259, 1.0), (397, 397, 0.9904, 1.0),
                                          (0, 4, 0.0, 0.4899), (59, 64, 0.8298, 0.9662)])
def test_wilson_interval_matches_the_formula_s_published_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def _logits(n: int, margin_first: float, seed: int = 0) -> np.ndarray:
    """n samples of 10 logits; sample 0's top-2 margin is `margin_first`, the others' are 3.0 or more."""
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(n, 10))
    r[:, 0] = r.max(1) + 3.0
    r[0, 0], r[0, 1] = 5.0, 5.0 - margin_first
    r[0, 2:] = np.minimum(r[0, 2:], 4.0)
    return r


def _flip_first(r: np.ndarray, noise: float, seed: int = 1) -> np.ndarray:
    o = r + np.random.default_rng(seed).normal(scale=noise, size=r.shape)
    o[0, 0], o[0, 1] = o[0, 1], o[0, 0] + 1e-3  # sample 0 now answers class 1
    o[0, 1] = max(o[0, 1], o[0, 0] + 1e-3)
    return o


def test_a_flip_inside_the_noise_is_a_near_tie_and_passes_at_fp16():
    """The issue's FP16 case: one flip of a near-tie must not reject the artifact."""
    r = _logits(64, margin_first=0.01)
    m = output_metrics(r, _flip_first(r, noise=0.02), classifier=True)
    assert (m["top1_agree"], m["top1_n"], m["flips_near_tie"], m["flips_decisive"]) == (63, 64, 1, 0)
    assert 0.02 * 0.8 < m["noise_sigma"] < 0.02 * 1.2 and m["near_tie_margin"] > 0.01
    assert judge({"logits": m}, DEFAULT_TOLERANCES["fp16"]) == []
    assert "63/64" in describe(m) and "1 near-tie, 0 decisive" in describe(m)


def test_a_flip_of_a_clear_answer_is_decisive_and_fails_at_every_precision():
    r = _logits(400, margin_first=2.0)
    m = output_metrics(r, _flip_first(r, noise=0.02), classifier=True)
    assert (m["flips_near_tie"], m["flips_decisive"]) == (0, 1)
    assert m["top1_high95"] > 0.99  # the interval alone would pass: the decisive flip is what fails it
    for precision in ("fp32", "fp16", "int8"):
        fails = [f for f in judge({"logits": m}, DEFAULT_TOLERANCES[precision]) if "top-1" in f]
        assert len(fails) == 1 and "1 decisive top-1 flip" in fails[0], fails


def test_many_near_ties_still_fail_when_the_interval_lies_below_99_percent():
    """Near-ties are not free: 8 of 200 flipped is evidence of agreement below 99 %."""
    rng = np.random.default_rng(3)
    r = rng.normal(size=(200, 10))
    o = r + rng.normal(scale=0.05, size=r.shape)
    s = top1_stats(r, o)
    assert s["top1_n"] - s["top1_agree"] >= 4 and s["flips_decisive"] == 0
    fails = judge({"logits": output_metrics(r, o, True)}, DEFAULT_TOLERANCES["int8"])
    assert any("upper bound is below 0.99" in f for f in fails), fails


def test_a_constant_offset_is_no_noise():
    """An error that shifts every logit equally reorders nothing: its spread, and so its near-tie
    margin, is zero, and no flip can be excused by it."""
    r = _logits(16, margin_first=0.5)
    m = output_metrics(r, r + 0.3, classifier=True)
    assert m["noise_sigma"] == pytest.approx(0.0, abs=1e-12) and m["top1_agree"] == 16


def test_metrics_recorded_before_the_counts_are_judged_by_the_share():
    old = {"cosine": 1.0, "cosine_min_sample": 1.0, "snr_db": 90.0, "nonfinite": 0, "top1_agreement": 0.979}
    assert judge({"logits": old}, DEFAULT_TOLERANCES["fp32"]) == ["logits: top-1 agreement 0.9790 < 0.99"]
