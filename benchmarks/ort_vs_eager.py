"""ONNX Runtime (edgekit's cpu artifact) latency as a ratio to PyTorch eager, per built-in model.

Both run in this one process, one thread each, on the same held-out input, interleaved in ABBA
blocks so drift and noisy neighbours hit both sides alike. Reported: median latency of each side,
the median of per-block ratios, and its bootstrap 95% interval. Ratios < 1 mean ORT is faster.

    .venv/bin/python benchmarks/ort_vs_eager.py [--models digits minilm efficientnet-lite0] [--blocks 20]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["digits", "minilm", "efficientnet-lite0"])
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--block-seconds", type=float, default=0.25, help="seconds per segment (4 segments a block)")
    ap.add_argument("--out", default="build/bench")
    args = ap.parse_args()

    import torch

    import edgekit
    from edgekit.bundle import open_bundle
    from edgekit.gate import bootstrap_median_ci, interleave
    from edgekit.pipeline import compile_model
    from edgekit.sources import load_model

    torch.set_num_threads(1)
    rows = []
    for name in args.models:
        out = Path(args.out) / f"{name}-cpu"
        src = load_model(f"builtin:{name}")
        try:
            if open_bundle(out).model["sha256"] != src.sha256:
                raise ValueError("stale")
        except Exception:
            compile_model(f"builtin:{name}", "cpu", str(out))
        pred = edgekit.load(out, threads=1)
        feed = src.verify_inputs[0]
        targs = tuple(torch.from_numpy(v.copy()) for v in feed.values())

        def eager():
            with torch.no_grad():
                src.module(*targs)

        def ort():
            pred.predict(feed)

        # the gate's own ABBA interleaving and bootstrap interval (edgekit.gate)
        logr, te, to, _n = interleave(eager, ort, args.blocks, args.block_seconds, warmup_runs=5)
        te, to = np.array(te) * 1e3, np.array(to) * 1e3
        lo, hi = (float(np.exp(v)) for v in bootstrap_median_ci(np.array(logr), 0.95, 2000, seed=0))
        ratios = np.exp(logr)
        rows.append((name, np.median(te), np.median(to), float(np.median(ratios)), lo, hi, len(te)))
        print(f"{name}: eager p50 {np.median(te):.3f} ms, onnxruntime p50 {np.median(to):.3f} ms, "
              f"ratio {np.median(ratios):.3f} (95% CI {lo:.3f}-{hi:.3f}), {args.blocks} ABBA blocks", flush=True)

    print("\nONNX Runtime / PyTorch eager, 1 thread, interleaved (lower is better)")
    print(f"{'model':20s} {'eager p50 ms':>13s} {'ORT p50 ms':>11s} {'ratio':>7s} {'95% CI':>15s} {'runs/side':>9s}")
    for name, e, o, r, lo, hi, n in rows:
        print(f"{name:20s} {e:13.3f} {o:11.3f} {r:7.3f} {lo:7.3f}-{hi:<7.3f} {n:9d}")


if __name__ == "__main__":
    main()
