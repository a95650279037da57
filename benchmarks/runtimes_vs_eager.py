"""Each verified artifact's latency as a ratio to PyTorch eager, per built-in model and target.

Both sides run in this one process, one thread each, on the same held-out input, interleaved in
ABBA blocks (edgekit.gate.interleave) so drift and noisy neighbours hit both alike. Reported: the
median latency of each side, the median of per-block ratios and its bootstrap 95% interval.
Ratios < 1 mean the artifact is faster than eager. These are *host* timings (x86-64 here): for
`android`/`rpi` they rank runtimes on this CPU, they do not say what a phone or a Pi will do.
For `browser`, each TF.js artifact runs twice: in Node and in a page of headless Chromium; both
time their own runs (performance.now()), so the pipe to Node or the page is not counted.

    .venv/bin/python benchmarks/runtimes_vs_eager.py [--target cpu|android|rpi|cpu-tvm|browser]
        [--models digits minilm efficientnet-lite0] [--blocks 20]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="cpu")
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
    from edgekit.runtimes import open_runner
    from edgekit.sources import load_model

    torch.set_num_threads(1)
    rows = []
    for name in args.models:
        out = Path(args.out) / f"{name}-{args.target}"
        src = load_model(f"builtin:{name}")
        try:
            manifest = open_bundle(out)
            if manifest.model["sha256"] != src.sha256:
                raise ValueError("stale")
        except Exception:
            _, manifest = compile_model(f"builtin:{name}", args.target, str(out))
        feed = src.verify_inputs[0]
        targs = tuple(torch.from_numpy(v.copy()) for v in feed.values())

        def eager():
            with torch.no_grad():
                src.module(*targs)

        for art, runtime in _subjects(manifest):
            pred = edgekit.load(out, artifact=art.id, threads=1)
            runner = pred.runner if runtime == art.runtime else open_runner(
                runtime, out / art.path, 1, art.inputs, art.outputs, art.input_layout)

            def artifact():
                pred.predict(feed)

            def own_timing(n, warmup):  # JS runtimes time their own runs, k per sample when runs are short
                inner = getattr(runner, "runner", runner)
                runner.timed_runs(feed, warmup, 0)
                samples = max(3, n // getattr(inner, "runs_per_sample", 1))
                return [t / 1e3 for t in runner.timed_runs(feed, samples, 0)[:samples]]

            logr, te, ta, _n = interleave(eager, artifact, args.blocks, args.block_seconds, warmup_runs=5,
                                          segment_b=own_timing if runner.timed_runs(feed, 1, 0) else None)
            if runtime != art.runtime:
                runner.close()
            te, ta = np.array(te) * 1e3, np.array(ta) * 1e3
            lo, hi = (float(np.exp(v)) for v in bootstrap_median_ci(np.array(logr), 0.95, 2000, seed=0))
            r = float(np.median(np.exp(logr)))
            rows.append((name, art.id + ("" if runtime == art.runtime else f" ({runtime})"), art.size_bytes, np.median(te), np.median(ta), r, lo, hi, len(te)))
            print(f"{name} {art.id} on {runtime}: eager p50 {np.median(te):.3f} ms, artifact p50 {np.median(ta):.3f} ms, "
                  f"ratio {r:.3f} (95% CI {lo:.3f}-{hi:.3f})", flush=True)

    print(f"\nartifact / PyTorch eager, target {args.target}, 1 thread, interleaved, on this host (lower is better)")
    print(f"{'model':20s} {'artifact':32s} {'size kB':>9s} {'eager p50 ms':>13s} {'art. p50 ms':>12s} "
          f"{'ratio':>7s} {'95% CI':>15s} {'runs/side':>9s}")
    for name, aid, size, e, a, r, lo, hi, n in rows:
        print(f"{name:20s} {aid:32s} {size / 1024:9.1f} {e:13.3f} {a:12.3f} {r:7.3f} {lo:7.3f}-{hi:<7.3f} {n:9d}")


def _subjects(manifest):
    """(artifact, runtime) pairs: each usable artifact on its own runtime, TF.js ones also in Chromium."""
    for art in manifest.usable():
        yield art, art.runtime
        if art.runtime == "tfjs":
            yield art, "tfjs-chromium"


if __name__ == "__main__":
    main()
