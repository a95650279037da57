"""Helpers the benchmark scripts share: a cached bundle per model and target, and one interleaved
latency ratio with its bootstrap interval."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def cached_bundle(name: str, target: str, out: Path, precision: str | None = None, recompile: bool = False,
                  qat: int | None = None):
    """(model source, manifest): the bundle at `out`, recompiled unless it is of this model's weights.
    It does not notice converter changes: --recompile after editing converters/. A compile whose
    every artifact failed verification still wrote its bundle (every metric recorded): it is read."""
    from edgekit.bundle import open_bundle
    from edgekit.errors import VerificationFailed
    from edgekit.pipeline import compile_model
    from edgekit.sources import load_model

    src = load_model(f"builtin:{name}")
    try:
        manifest = open_bundle(out)
        if recompile or manifest.model["sha256"] != src.sha256:
            raise ValueError("stale")
    except Exception:
        try:
            _, manifest = compile_model(f"builtin:{name}", target, str(out), precision=precision, qat=qat)
        except VerificationFailed as e:
            print(f"  {e.message.splitlines()[0][:200]}", flush=True)
            manifest = open_bundle(out)
    return src, manifest


def timed_ratio(run_a, run_b, blocks: int, block_seconds: float, segment_b=None) -> dict:
    """B's latency against A's, interleaved: medians (ms), median of per-block ratios B/A and its
    bootstrap 95% interval, runs of A (B's may differ when segment_b times itself)."""
    from edgekit.gate import bootstrap_median_ci, interleave

    logr, ta, tb, _ = interleave(run_a, run_b, blocks, block_seconds, warmup_runs=5, segment_b=segment_b)
    lo, hi = (float(np.exp(v)) for v in bootstrap_median_ci(np.array(logr), 0.95, 2000, seed=0))
    return {"a_ms": float(np.median(ta) * 1e3), "b_ms": float(np.median(tb) * 1e3),
            "ratio": float(np.median(np.exp(logr))), "lo": lo, "hi": hi, "runs": len(ta)}
