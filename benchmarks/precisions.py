"""FP32 vs FP16 vs INT8 vs mixed-precision artifacts side by side, per built-in model and target.

Each model is compiled with `--precision auto` (every candidate, INT8 and FP16 ones built on
request included). Per runtime, every other artifact is timed against that runtime's FP32 artifact in
this one process, one thread each, on the same held-out input, interleaved in ABBA blocks
(edgekit.gate.interleave). Reported: each artifact's median latency, the median of per-block
latency ratios to the FP32 artifact with its bootstrap 95% interval, its size ratio to that
artifact, its quantization mode as recorded, and its verification numbers from the manifest.
Ratios < 1 mean smaller / faster than FP32. Artifacts that failed verification are timed too and
marked FAILED (their speed says what the accuracy loss would have bought). These are *host*
timings (x86-64 here): for `android` they rank precisions on this CPU, they do not say what a
phone's kernels will do.

With --qat [STEPS], each model is also compiled with `--precision int8 --qat STEPS` into a second
bundle (MODEL-TARGET-qat); its INT8 artifacts (quantization-aware fine-tuned where the converter
can, marked "qat" in the mode column) are timed in the same runs against the same FP32 artifacts.

    .venv/bin/python benchmarks/precisions.py [--targets cpu android]
        [--models digits efficientnet-lite0] [--blocks 20] [--recompile] [--qat [STEPS]]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import cached_bundle, timed_ratio  # this folder is on sys.path when a script runs


def mode(art) -> str:
    """The quantization mode as the converter recorded it (PT2E nests it under "quantization")."""
    if art.precision == "fp32":
        return "-"
    if art.precision == "fp16":  # weights are float16; the arithmetic is each runtime's (converter info)
        return f"fp16 weights, {(art.converter.get('fp16') or {}).get('arithmetic', '?')} math"
    q = art.converter.get("quantization") or art.converter
    m = q.get("mode", "?")
    if q.get("qat") and "QAT" not in m:  # --qat fine-tuned it (--precision auto names it in the mode)
        m = "qat " + m
    if "mixed" in m:
        mp = q.get("mixed_precision") or {}
        kept = mp.get("float_layers") or mp.get("float_layers_tried") or []
        return f"mixed: {len(kept)} layers float"
    return m


def verification(art) -> tuple[str, str]:
    """Worst output's cosine and top-1 agreement on the held-out samples, as verified at compile."""
    ms = list((art.verification.metrics or {}).values())
    cos = min((m["cosine"] for m in ms if "cosine" in m), default=None)
    worst = min((m for m in ms if "top1_agreement" in m), key=lambda m: m["top1_agreement"], default=None)
    if worst is None:
        top1 = "-"
    elif "top1_n" in worst:  # k/n, its Wilson 95% interval, and the decisive flips (edgekit.agreement)
        top1 = (f"{worst['top1_agree']}/{worst['top1_n']} ({100 * worst['top1_low95']:.1f}-"
                f"{100 * worst['top1_high95']:.1f}%) {worst['flips_decisive']} decisive")
    else:
        top1 = f"{100 * worst['top1_agreement']:.1f}%"
    return (f"{cos:.6f}" if cos is not None else "-"), top1


def compare_runtime(arts: list[tuple], feed: dict, args) -> list[dict]:
    """Rows for one runtime's (artifact, its bundle folder) pairs, each timed against that runtime's
    FP32 artifact (the reference)."""
    from edgekit.runtimes import open_runner

    where = {id(a): bundle for a, bundle in arts}
    arts = [a for a, _ in arts]
    fp32 = [a for a in arts if a.precision == "fp32" and a.role in ("primary", "fallback")]
    ref = next((a for a in fp32 if a.id == f"{a.runtime}-fp32"), fp32[0] if fp32 else None)
    rows, base = [], None
    for a in sorted(arts, key=lambda a: a is not ref):  # the reference first: its runner serves every pair
        # A rejected artifact (failed verification) is still timed: whether the INT8 that missed the
        # tolerance would have been faster is half of the answer. Its row says it failed.
        why = ({"on-device": f"not verified here (on-device): {a.verification.reason}"}.get(a.role)
               or (f"no verified FP32 artifact on {a.runtime} to compare with" if ref is None else None)
               or (f"its FP32 reference {ref.id} cannot run here" if a is not ref and base is None else None))
        try:
            runner = None if why else open_runner(a.runtime, where[id(a)] / a.path, 1, a.inputs, a.outputs,
                                                  a.input_layout)
            if runner is not None and runner.timed_runs(feed, 1, 0) is not None:
                why = "its runtime runs in another process; this benchmark times in-process runtimes only"
        except Exception as e:  # noqa: BLE001 — a runtime missing or refusing the file: say so, go on
            why = f"cannot run here: {str(e).splitlines()[0][:160]}"
        if why:
            print(f"  skip {a.id}: {why}", flush=True)
            getattr(runner, "close", lambda: None)()
            continue
        cos, top1 = verification(a)
        rows.append({"runtime": a.runtime, "id": ("qat/" if where[id(a)] != where[id(ref)] else "") + a.id,
                     "precision": a.precision,
                     "mode": mode(a) + (" FAILED" if a.verification.status == "failed" else ""),
                     "kb": a.size_bytes / 1024, "size": a.size_bytes / ref.size_bytes, "cos": cos, "top1": top1})
        if a is ref:
            base = runner
            continue
        t = timed_ratio(lambda: base.run(feed), lambda: runner.run(feed), args.blocks, args.block_seconds)
        rows[-1].update(t)
        print(f"  {a.id} vs {ref.id}: {t['b_ms']:.3f} / {t['a_ms']:.3f} ms, ratio {t['ratio']:.3f} "
              f"(95% CI {t['lo']:.3f}-{t['hi']:.3f})", flush=True)
        getattr(runner, "close", lambda: None)()
    if base is not None:  # the reference's p50: over all its interleaved segments on this runtime
        rows[0]["b_ms"] = float(np.median([r["a_ms"] for r in rows[1:]])) if rows[1:] else None
        getattr(base, "close", lambda: None)()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", nargs="+", default=["cpu", "android"])
    ap.add_argument("--models", nargs="+", default=["digits", "efficientnet-lite0"])
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--block-seconds", type=float, default=0.25, help="seconds per segment (4 segments a block)")
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--recompile", action="store_true", help="compile even when a bundle of these weights exists")
    ap.add_argument("--qat", nargs="?", type=int, const=200, metavar="STEPS",
                    help="also compile INT8 with quantization-aware fine-tuning (STEPS, default 200) and compare it")
    args = ap.parse_args()

    from edgekit.errors import EdgekitError

    tables = []
    for target in args.targets:
        for name in args.models:
            out = Path(args.out) / f"{name}-{target}-auto"
            print(f"{name} on {target} ({out}):", flush=True)
            try:
                src, manifest = cached_bundle(name, target, out, "auto", args.recompile)
            except EdgekitError as e:
                print(f"  skip: {e.message}", flush=True)
                continue
            for f in manifest.failed_candidates:
                print(f"  skip {f['id']}: not built ({f['stage']}): {f['error'].splitlines()[0][:160]}", flush=True)
            arts = [(a, out) for a in manifest.artifacts]
            if args.qat:
                qout = Path(args.out) / f"{name}-{target}-qat"
                print(f"{name} on {target}, INT8 with --qat {args.qat} ({qout}):", flush=True)
                try:
                    _, qmanifest = cached_bundle(name, target, qout, "int8", args.recompile, qat=args.qat)
                    arts += [(a, qout) for a in qmanifest.artifacts if a.precision == "int8"]
                except EdgekitError as e:
                    print(f"  skip: {e.message}", flush=True)
            rows = []
            for rt in dict.fromkeys(a.runtime for a, _ in arts):
                rows += compare_runtime([p for p in arts if p[0].runtime == rt], src.verify_inputs[0], args)
            tables.append((name, target, rows))

    print("\nratios to the FP32 artifact on the same runtime, 1 thread, interleaved, on this host (lower is better)")
    print(f"{'model':18s} {'target':8s} {'runtime':16s} {'artifact':22s} {'prec':5s} {'mode':24s} {'kB':>8s} "
          f"{'size':>6s} {'p50 ms':>8s} {'latency':>7s} {'95% CI':>13s} {'cosine':>9s} top-1 agreement (95% CI)")
    for name, target, rows in tables:
        for r in rows:
            p50 = f"{r['b_ms']:8.3f}" if r.get("b_ms") is not None else f"{'-':>8s}"
            lat = f"{r['ratio']:7.3f} {r['lo']:6.3f}-{r['hi']:<6.3f}" if "ratio" in r else f"{'1 (ref)':>7s} {'':13s}"
            print(f"{name:18s} {target:8s} {r['runtime']:16s} {r['id']:22s} {r['precision']:5s} {r['mode']:24s} "
                  f"{r['kb']:8.1f} {r['size']:6.3f} {p50} {lat} {r['cos']:>9s} {r['top1']}")



if __name__ == "__main__":
    main()
