"""Parity metrics between an artifact's outputs and the reference, and the pass/fail judgement.

Pure numpy: the same code runs on a device. Metrics are computed over all held-out samples:
max/mean absolute error, cosine similarity (all values flattened), SNR in dB, non-finite count,
and, for classifiers, top-1 agreement with the reference as counts with a 95 % interval and its
flips split into near-ties and decisive ones (edgekit.agreement), and accuracy when labels exist.
"""
from __future__ import annotations

import math

import numpy as np

SNR_CAP_DB = 300.0  # identical outputs have infinite SNR; JSON has no infinity


def output_metrics(ref: np.ndarray, out: np.ndarray, classifier: bool) -> dict:
    """ref, out: [N, ...] stacked over samples."""
    r = ref.astype(np.float64).reshape(len(ref), -1)
    o = out.astype(np.float64).reshape(len(out), -1)
    ref_nonfinite = int((~np.isfinite(r)).sum())
    r = np.where(np.isfinite(r), r, 0.0)
    nonfinite = int((~np.isfinite(o)).sum())
    o_f = np.where(np.isfinite(o), o, 0.0)
    err = o_f - r
    denom = float(np.linalg.norm(r) * np.linalg.norm(o_f))
    cosine = float((r * o_f).sum() / denom) if denom > 0 else (1.0 if not r.any() and not o_f.any() else 0.0)
    noise = float((err ** 2).sum())
    snr = SNR_CAP_DB if noise == 0 else min(SNR_CAP_DB, 10 * math.log10(max(float((r ** 2).sum()), 1e-300) / noise))
    norms = np.linalg.norm(r, axis=1) * np.linalg.norm(o_f, axis=1)
    per_sample = np.where(norms > 0, (r * o_f).sum(1) / np.where(norms > 0, norms, 1.0),
                          np.where((np.abs(r).sum(1) == 0) & (np.abs(o_f).sum(1) == 0), 1.0, 0.0))
    m = {
        "reference_nonfinite": ref_nonfinite,
        "cosine_min_sample": float(per_sample.min()) if len(per_sample) else 1.0,
        "max_abs": float(np.abs(err).max()) if err.size else 0.0,
        "mean_abs": float(np.abs(err).mean()) if err.size else 0.0,
        "cosine": cosine,
        "snr_db": snr,
        "nonfinite": nonfinite,
    }
    if classifier:
        from .agreement import top1_stats

        m.update(top1_stats(r, o_f))
    return m


def per_output(refs: list[dict], got: list[dict], names, classifier: bool) -> dict[str, dict]:
    """output_metrics for each named output over samples (lists of {name: array}, one per sample)."""
    return {n: output_metrics(np.stack([r[n] for r in refs]), np.stack([g[n] for g in got]), classifier) for n in names}


def judge(metrics: dict[str, dict], tol) -> list[str]:
    """Reasons the artifact fails its tolerance; empty means it passes."""
    failures = []
    for name, m in metrics.items():
        if m.get("reference_nonfinite", 0):
            failures.append(f"{name}: the reference itself has {m['reference_nonfinite']} non-finite values; "
                            "parity cannot be judged (check the model and its inputs)")
        if m["nonfinite"] > tol.max_nonfinite:
            failures.append(f"{name}: {m['nonfinite']} non-finite values (allowed {tol.max_nonfinite})")
        if not m["cosine"] >= tol.cosine_min:  # `not >=` so that NaN fails
            failures.append(f"{name}: cosine {m['cosine']:.6f} < {tol.cosine_min}")
        if not m.get("cosine_min_sample", 1.0) >= tol.cosine_min:
            failures.append(f"{name}: worst single-sample cosine {m['cosine_min_sample']:.6f} < {tol.cosine_min}")
        snr_min = getattr(tol, "snr_min_db", None)
        if snr_min is not None and not m.get("snr_db", float("inf")) >= snr_min:
            failures.append(f"{name}: SNR {m['snr_db']:.1f} dB < {snr_min} dB (outputs off in scale or value)")
        if "top1_agreement" in m:
            from .agreement import judge_top1

            failures += judge_top1(name, m, tol.top1_min)
    return failures


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.reshape(len(logits), -1).argmax(1) == labels).mean())
