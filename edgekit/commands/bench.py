"""`edgekit bench`: benchmark a bundle's artifact(s) on this machine."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError, did_you_mean
from ..table import render, size
from ..bench import bench_all, options_from
from .common import add_bench_opts, add_device_opts, add_history_opts, record, write_json


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="benchmark a bundle's artifact(s) on this machine")
    b.add_argument("bundle")
    b.add_argument("--artifact", help="artifact id (default: the primary)")
    b.add_argument("--all", action="store_true", help="every usable artifact")
    b.add_argument("--choose-primary", action="store_true", help="make the fastest artifact measured on the target "
                   "the bundle's primary (needs --all; --device unless this host is the target)")
    add_bench_opts(b)
    add_device_opts(b)
    add_history_opts(b)
    b.add_argument("--keep-samples", action="store_true", help="include every timed run in the JSON (samples_ms), "
                   "e.g. to use as `gate --baseline-file`")
    b.add_argument("--profile", action="store_true", help="per-operator times from the runtime's own profiler "
                   "(ONNX Runtime, ExecuTorch ETDump), in a separate run after the timed one")
    b.add_argument("--shape", action="append", metavar="DIM=SIZE[,DIM=SIZE]",
                   help="time a model with dynamic dims at these sizes (repeat for several), e.g. --shape seq=8 "
                        "--shape seq=128; dims not named stay at their opt size")


def _bench_shapes(texts: list[str] | None, manifest) -> list[dict] | None:
    """`--shape seq=8` / `--shape H=320,W=640` (repeatable) -> [{dim: size}], checked against the
    bundle's dynamic dims and their bounds."""
    if not texts:
        return None
    dims = {d["name"]: d for d in manifest.model.get("dynamic") or []}
    if not dims:
        raise UsageError(f"--shape: {manifest.model.get('name')} has static shapes (no dynamic dims) in this bundle",
                         hint="compile with ranges, e.g. --input input_ids:1x[1..128]:int64, or a factory's dynamic_shapes")
    out = []
    for text in texts:
        point = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep or not value.isdigit():
                raise UsageError(f"--shape {text!r} is not DIM=SIZE[,DIM=SIZE]", hint=f"e.g. --shape {next(iter(dims))}="
                                 f"{next(iter(dims.values()))['max']}; dims: " + ", ".join(
                                     f"{k} [{d['min']}..{d['max']}]" for k, d in dims.items()))
            if name not in dims:
                raise UsageError(f"--shape {text!r}: no dynamic dim {name!r}{did_you_mean(name, list(dims))}; dims: "
                                 + ", ".join(f"{k} [{d['min']}..{d['max']}]" for k, d in dims.items()))
            if not dims[name]["min"] <= int(value) <= dims[name]["max"]:
                raise UsageError(f"--shape {text!r}: {name} is {value}, outside its bounds [{dims[name]['min']}.."
                                 f"{dims[name]['max']}]")
            point[name] = int(value)
        out.append({k: point.get(k, d["opt"]) for k, d in dims.items()})  # a dim not named: its opt size
    return out


def _roof_cells(roof: dict | None) -> list[str]:
    return [f"{roof['gflops_per_s']:.2f}", f"{roof['pct_of_peak']:.1f}"] if roof else ["-", "-"]


def profile_table(r: dict, top: int = 10) -> str:
    """The busiest operators of one profiled bench result, with their share of the measured p50."""
    p = r["profile"]
    p50 = r["latency_ms"]["p50"]
    rows = [[o["op"], str(o["count"]), f"{o['ms_per_run']:.4f}", f"{100 * o['ms_per_run'] / p50:.1f}"]
            for o in p["ops"][:top]]
    cov = p.get("coverage_of_p50")
    return render(["operator", "per run", "ms per run", "% of p50"], rows,
                  f"{r['artifact']}: top operators ({p['source']}; {p['runs']} profiled runs); operators sum to "
                  f"{p['ops_ms_per_run']:.3f} ms = {100 * cov:.0f}% of the unprofiled p50 {p50:.3f} ms" if cov else "")


def run(args) -> int:
    from ..bundle import open_bundle

    bundle = Path(args.bundle)
    manifest = open_bundle(bundle)
    usable = manifest.usable()
    if args.artifact:
        ids = [args.artifact]
        if args.artifact not in [a.id for a in usable]:
            raise UsageError(f"no usable artifact {args.artifact!r} in {bundle}"
                             f"{did_you_mean(args.artifact, [a.id for a in usable])}")
    else:
        ids = [a.id for a in usable] if args.all else [usable[0].id] if usable else []
    if not ids:
        raise UsageError(f"{bundle} has no verified artifact to benchmark")
    if args.choose_primary:
        from ..primary import check_can_choose

        check_can_choose(manifest, args.device)
        if not args.all:
            raise UsageError("--choose-primary compares every usable artifact: add --all")
    if args.device and args.profile:
        raise UsageError("--profile runs on this machine only for now; drop --device, or --profile")
    args.shapes = _bench_shapes(args.shape, manifest)
    if args.shapes and (args.device or args.choose_primary):
        raise UsageError("--shape times on this machine, without --choose-primary, for now; drop --device / "
                         "--choose-primary, or --shape")
    if args.device == "chromium":  # a local browser page, not an ssh device
        not_web = [aid for aid in ids if next(a for a in usable if a.id == aid).runtime != "tfjs"]
        if not_web:
            raise UsageError(f"--device chromium runs TF.js artifacts only; not TF.js: {', '.join(not_web)}",
                             hint="compile with --target browser")
        args.runtime, args.device = "tfjs-chromium", None
    if args.device:
        from ..remote import remote_bench

        print(f"[edgekit] bench on {args.device} ...", file=sys.stderr, flush=True)
        results = [remote_bench(args.device, bundle, aid, args.threads, args.warmup, args.min_runs, args.min_time,
                                timeout_s=args.device_timeout,
                                identity=args.identity, device_python=args.device_python,
                                known_hosts=args.known_hosts) for aid in ids]
        for r in results:
            for w in r.get("warnings", []):
                print(f"edgekit: warning: {w}", file=sys.stderr)
        if args.choose_primary and any(r["device"].get("emulated") for r in results):
            raise UsageError(f"--choose-primary needs the device's real timings; {results[0]['measured_on']} is an "
                             "emulated CPU, whose latencies rank nothing; the bundle is unchanged",
                             hint="run it on the real device, or use the emulated one for numerics: "
                                  f"edgekit verify {bundle} --device {args.device}")
    else:
        results = bench_all(bundle, ids, args.threads, **options_from(args))
    if args.choose_primary:
        from ..primary import choose_primary

        from ..primary import timings

        choice = choose_primary(bundle, manifest, results)
        print(f"[edgekit] primary: {manifest.usable()[0].id} (fastest p50 on {choice['measured_on']}: "
              f"{timings(choice)})", file=sys.stderr)
    record(args, "bench", results, manifest)
    payload = results[0] if len(results) == 1 else {"results": results}
    if args.json:
        write_json(args.json, payload)
    shaped = [[",".join(f"{k}={v}" for k, v in r["shape"].items())] if args.shapes else [] for r in results]
    rows = [[r["artifact"], *sh, r["precision"], size(r["size_bytes"]), r["runs"], *(f"{r['latency_ms'][k]:.3f}" for k in
             ("p50", "p90", "p99", "mean", "std", "min")), f"{r['load_ms']:.1f}", f"{r['first_run_ms']:.2f}",
             f"{r['peak_rss_mb']:.0f}", *_roof_cells(r.get("roofline"))] for r, sh in zip(results, shaped)]
    env = results[0]["env"]
    print(render(["artifact", *(["shape"] if args.shapes else []), "precision", "size", "runs", "p50 ms", "p90 ms",
                  "p99 ms", "mean", "std", "min", "load ms", "first ms", "peak RSS MB", "GFLOP/s", "% peak"], rows,
                 f"{bundle}: {results[0]['threads']} thread(s) on {env['cpu']['model']} "
                 f"({results[0]['measured_on']}); {env['runtime']} {env['runtime_version']}"))
    for r in results:
        if r.get("profile"):
            print("\n" + profile_table(r))
        for n in r.get("notes", []):
            print(f"edgekit: note: {r['artifact']}: {n}", file=sys.stderr)
    return 0
