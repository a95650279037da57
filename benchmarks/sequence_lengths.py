"""Latency vs sequence length: builtin:minilm (dynamic length 1..128) per artifact, against PyTorch
eager at the same length, and against the same artifact fed the sentence padded to 64 tokens (what
the fixed-length MiniLM bundles did before).

Both sides of every ratio run in this one process, one thread each, interleaved in ABBA blocks
(edgekit.gate.interleave). Inputs: a held-out sentence's tokens cropped or wrapped to each length
(edgekit.sources.dynamic.at_point); the padded input is that sentence at the length under a zero
attention mask up to 64. A bucketed artifact (LiteRT, ExecuTorch INT8) pads up to its next bucket
itself, so its time at 16 tokens is its 32-token bucket's. Host timings (x86-64 here): they rank
runtimes on this CPU; a phone's numbers differ.

    .venv/bin/python benchmarks/sequence_lengths.py [--targets cpu android] [--lengths 8 16 32 64 128]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import cached_bundle, timed_ratio  # this folder is on sys.path when a script runs

PADDED = 64  # the fixed length builtin:minilm bundles were padded to before dynamic shapes


def _padded(feed: dict, length: int) -> dict:
    """The sentence at `length` tokens, padded with [PAD] (0) under a 0 mask to PADDED."""
    return {k: np.pad(v, [(0, 0), (0, PADDED - length)]) for k, v in feed.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", nargs="+", default=["cpu", "android"])
    ap.add_argument("--lengths", nargs="+", type=int, default=[8, 16, 32, 64, 128])
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--block-seconds", type=float, default=0.15, help="seconds per segment (4 segments a block)")
    ap.add_argument("--out", default="build/bench")
    args = ap.parse_args()

    import torch

    import edgekit
    from edgekit.envinfo import environment
    from edgekit.sources.dynamic import at_point

    torch.set_num_threads(1)
    print(f"CPU: {environment(1, 'onnxruntime', None)['cpu']['model']}", flush=True)
    rows = []
    for target in args.targets:
        out = Path(args.out) / f"minilm-{target}"
        src, manifest = cached_bundle("minilm", target, out)
        for art in manifest.usable():
            pred = edgekit.load(out, artifact=art.id, threads=1)
            for n in args.lengths:
                feed = at_point(src.verify_inputs[0], src.dynamic, {"seq": n})
                targs = tuple(torch.from_numpy(v.copy()) for v in feed.values())

                def eager():
                    with torch.no_grad():
                        src.module(*targs)

                vs_eager = timed_ratio(eager, lambda: pred.predict(feed), args.blocks, args.block_seconds)
                vs_pad = None
                if n < PADDED:
                    padded = _padded(feed, n)
                    vs_pad = timed_ratio(lambda: pred.predict(padded), lambda: pred.predict(feed), args.blocks,
                                         args.block_seconds)
                rows.append((target, art.id, n, vs_eager, vs_pad))
                print(f"{target} {art.id} seq={n}: eager {vs_eager['a_ms']:.2f} ms, artifact {vs_eager['b_ms']:.2f} ms "
                      f"(x{vs_eager['ratio']:.2f} of eager)"
                      + (f"; padded to {PADDED}: {vs_pad['a_ms']:.2f} ms, own length is x{vs_pad['ratio']:.2f} of that"
                         if vs_pad else ""), flush=True)

    print("\nbuiltin:minilm latency vs sequence length, 1 thread, interleaved, on this host (lower is better)")
    print(f"{'target':8s} {'artifact':24s} {'seq':>4s} {'eager ms':>9s} {'art. ms':>8s} {'/eager':>7s} "
          f"{'95% CI':>13s} {'padded-64 ms':>13s} {'own/padded':>10s}")
    for target, aid, n, e, p in rows:
        pad = f"{p['a_ms']:13.2f} {p['ratio']:10.2f}" if p else f"{'-':>13s} {'-':>10s}"
        print(f"{target:8s} {aid:24s} {n:4d} {e['a_ms']:9.2f} {e['b_ms']:8.2f} {e['ratio']:7.2f} "
              f"{e['lo']:6.2f}-{e['hi']:<6.2f} {pad}")


if __name__ == "__main__":
    main()
