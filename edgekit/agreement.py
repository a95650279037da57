"""Top-1 agreement that says how sure it is: counts, a Wilson interval, and flips split by cause.

48 held-out samples cannot tell 99 % from 97 %: one flip moves 48/48 to 47/48, whose 95 % interval
is 89-99.6 %. And a flip is not always the artifact's fault: where the source model's own top-2
logits are closer than the artifact's output noise, either answer is within that noise (a near-tie).
So a classifier's agreement is reported as k/n with its Wilson score interval, and each flip is
classed by the margin it overturned against the measured noise:

- noise sigma: a robust spread (1.4826 x the median absolute deviation) of the artifact's output
  error on each sample's top classes (the source's top 5: the values whose order decides top-1; the
  many tail classes would say ~0 for softmax outputs), so a few bad samples cannot widen it to
  excuse themselves;
- near-tie: the margin the artifact overturned (the source's value of its own top class minus its
  value of the class the artifact chose) is below 2*sqrt(2)*sigma, what two independent errors of
  that spread exceed about 5 % of the time; such a flip is the noise reordering a tie;
- decisive: a larger margin that the artifact still overturned.

The tolerance (edgekit.verify.judge) then fails a classifier on any decisive flip, or when the
interval's upper bound is below the profile's top-1 minimum (the data show agreement below it);
the same rule for every precision. Held-out samples made from crops of one photo are correlated,
so the interval is optimistic for them; the manifest names the data (verify_data).

Pure numpy: runs on a device too. Wilson's interval rather than a library call: it is one formula
(scipy is not a dependency of the bare install that devices run).
"""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 %
NEAR_TIE_SIGMAS = 2 * math.sqrt(2)
TOP_K = 5  # the noise is measured on each sample's top classes


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion k/n (n >= 1)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def top1_stats(ref: np.ndarray, out: np.ndarray) -> dict:
    """ref, out: [N, classes] (float64, finite). Agreement count, interval, flips split by the
    margin they overturned against the artifact's output noise."""
    n = len(ref)
    ref_top, out_top = ref.argmax(1), out.argmax(1)
    agree = ref_top == out_top
    k = min(TOP_K, ref.shape[1]) if n else 0
    top = np.argsort(ref, axis=1)[:, -k:] if k else np.zeros((n, 0), int)
    err = (np.take_along_axis(out, top, 1) - np.take_along_axis(ref, top, 1)).ravel()
    sigma = float(1.4826 * np.median(np.abs(err - np.median(err)))) if err.size else 0.0
    rows = np.arange(n)
    overturned = ref[rows, ref_top] - ref[rows, out_top]  # 0 where they agree
    if ref.shape[1] >= 2:
        top2 = np.sort(ref, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
    else:
        margin = np.full(n, np.inf)
    threshold = NEAR_TIE_SIGMAS * sigma
    flipped = ~agree
    near = int((flipped & (overturned < threshold)).sum())
    lo, hi = wilson(int(agree.sum()), n)
    return {"top1_agreement": float(agree.mean()) if n else 1.0, "top1_agree": int(agree.sum()), "top1_n": n,
            "top1_low95": lo, "top1_high95": hi, "flips_near_tie": near, "flips_decisive": int(flipped.sum()) - near,
            "noise_sigma": sigma, "near_tie_margin": threshold,
            "smallest_margin": float(margin.min()) if n and np.isfinite(margin).any() else None}


def describe(m: dict) -> str:
    """"47/48 = 97.9 % (95 % CI 89.1-99.6 %); flips: 1 near-tie, 0 decisive" (or the bare share for
    metrics recorded before these counts existed)."""
    if "top1_n" not in m:
        return f"top-1 agreement {100 * m['top1_agreement']:.1f}%"
    return (f"top-1 agreement {m['top1_agree']}/{m['top1_n']} = {100 * m['top1_agreement']:.1f}% "
            f"(95% CI {100 * m['top1_low95']:.1f}-{100 * m['top1_high95']:.1f}%); flips: {m['flips_near_tie']} "
            f"near-tie, {m['flips_decisive']} decisive (near-tie: overturned margin < {m['near_tie_margin']:.2g})")


def judge_top1(name: str, m: dict, top1_min: float) -> list[str]:
    """The classifier rule: no decisive flip, and the interval does not lie wholly below top1_min."""
    if "top1_n" not in m:  # recorded by an older edgekit: the share alone
        return [] if m["top1_agreement"] >= top1_min else [
            f"{name}: top-1 agreement {m['top1_agreement']:.4f} < {top1_min}"]
    out = []
    if m["flips_decisive"]:
        out.append(f"{name}: {m['flips_decisive']} decisive top-1 flip(s): the source's margin between its answer and "
                   f"the artifact's was above the output noise ({m['near_tie_margin']:.2g}), yet the answer changed ({m['top1_agree']}/{m['top1_n']} agree)")
    if not m["top1_high95"] >= top1_min:
        out.append(f"{name}: {describe(m)}: even the interval's upper bound is below {top1_min}")
    return out
