"""ONNX Runtime (edgekit's cpu artifact) latency as a ratio to PyTorch eager, per built-in model.

Both run in this one process, one thread each, on the same held-out input, interleaved in ABBA
blocks so drift and noisy neighbours hit both sides alike. Reported: median latency of each side,
the median of per-block ratios, and its bootstrap 95% interval. Ratios < 1 mean ORT is faster.

    .venv/bin/python benchmarks/ort_vs_eager.py [--models digits minilm efficientnet-lite0] [--blocks 20]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _time_block(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def interleaved(a, b, blocks: int, per_block: int, warmup: int = 5):
    for _ in range(warmup):
        a(), b()
    ta, tb, ratios = [], [], []
    for i in range(blocks):
        order = (a, b, b, a) if i % 2 == 0 else (b, a, a, b)  # ABBA / BAAB
        res = {id(a): [], id(b): []}
        for fn in order:
            res[id(fn)] += _time_block(fn, per_block)
        ta += res[id(a)]
        tb += res[id(b)]
        ratios.append(np.median(res[id(b)]) / np.median(res[id(a)]))
    return np.array(ta), np.array(tb), np.array(ratios)


def bootstrap_ci(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    meds = np.median(rng.choice(x, size=(n, len(x)), replace=True), axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["digits", "minilm", "efficientnet-lite0"])
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--block-seconds", type=float, default=0.25, help="target time per side per block")
    ap.add_argument("--out", default="build/bench")
    args = ap.parse_args()

    import torch

    import edgekit
    from edgekit.bundle import open_bundle
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

        t = time.perf_counter()
        for _ in range(5):
            eager()
        per = max(3, int(args.block_seconds / max((time.perf_counter() - t) / 5, 1e-5)))
        te, to, ratios = interleaved(eager, ort, args.blocks, per)
        lo, hi = bootstrap_ci(ratios)
        rows.append((name, np.median(te), np.median(to), float(np.median(ratios)), lo, hi, len(te)))
        print(f"{name}: eager p50 {np.median(te):.3f} ms, onnxruntime p50 {np.median(to):.3f} ms, "
              f"ratio {np.median(ratios):.3f} (95% CI {lo:.3f}-{hi:.3f}), {args.blocks} ABBA blocks", flush=True)

    print("\nONNX Runtime / PyTorch eager, 1 thread, interleaved (lower is better)")
    print(f"{'model':20s} {'eager p50 ms':>13s} {'ORT p50 ms':>11s} {'ratio':>7s} {'95% CI':>15s} {'runs/side':>9s}")
    for name, e, o, r, lo, hi, n in rows:
        print(f"{name:20s} {e:13.3f} {o:11.3f} {r:7.3f} {lo:7.3f}-{hi:<7.3f} {n:9d}")


if __name__ == "__main__":
    main()
