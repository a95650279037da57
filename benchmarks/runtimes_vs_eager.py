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

from _common import cached_bundle, timed_ratio  # this folder is on sys.path when a script runs


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
    from edgekit.runtimes import open_runner

    torch.set_num_threads(1)
    rows = []
    for name in args.models:
        out = Path(args.out) / f"{name}-{args.target}"
        src, manifest = cached_bundle(name, args.target, out)
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

            t = timed_ratio(eager, artifact, args.blocks, args.block_seconds,
                            segment_b=own_timing if runner.timed_runs(feed, 1, 0) else None)
            if runtime != art.runtime:
                runner.close()
            rows.append((name, art.id + ("" if runtime == art.runtime else f" ({runtime})"), art.size_bytes,
                         t["a_ms"], t["b_ms"], t["ratio"], t["lo"], t["hi"], t["runs"]))
            print(f"{name} {art.id} on {runtime}: eager p50 {t['a_ms']:.3f} ms, artifact p50 {t['b_ms']:.3f} ms, "
                  f"ratio {t['ratio']:.3f} (95% CI {t['lo']:.3f}-{t['hi']:.3f})", flush=True)

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
