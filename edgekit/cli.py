"""`python -m edgekit COMMAND`: compile, bench, verify, targets, doctor.

User errors (EdgekitError) print one line (+ a hint) and exit with their code; anything else is a
bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import EdgekitError, UsageError, did_you_mean
from .table import render, size, verification_cell


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage errors -> our exit code 2 with a suggestion
        if "invalid choice:" in message and "argument command" in message:
            bad = message.split("'")[1] if "'" in message else ""
            message += did_you_mean(bad, list(COMMANDS))
        raise UsageError(message, hint=f"{self.prog} --help")


def _bench_all(bundle: Path, manifest, artifact_ids, threads, args) -> list[dict]:
    from .bench import MIN_RUNS, MIN_TIME_S, WARMUP_S
    from .isolate import run_step

    results = []
    for aid in artifact_ids:
        print(f"[edgekit] bench {aid} ({threads} thread{'s' if threads != 1 else ''}) ...", file=sys.stderr, flush=True)
        results.append(run_step(f"bench-{aid}", "edgekit.bench:measure",
                                {"bundle_dir": str(bundle), "artifact_id": aid, "threads": threads,
                                 "warmup_s": getattr(args, "warmup", WARMUP_S),
                                 "min_runs": getattr(args, "min_runs", MIN_RUNS),
                                 "min_time_s": getattr(args, "min_time", MIN_TIME_S), "progress": True},
                                _log_dir(bundle), stderr_to_terminal=True))
    return results


def _write_json(path: str, payload) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=2))


def _log_dir(bundle: Path) -> Path:
    """Bench logs go to a temp folder: a bundle may be read-only on a device and is never modified."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"edgekit-bench-{bundle.name}-"))


def _summary(bundle: Path, manifest, bench: dict[str, dict]) -> str:
    rows = []
    for a in manifest.artifacts:
        b = bench.get(a.id)
        lat = b["latency_ms"] if b else None
        acc = a.verification.accuracy
        rows.append([a.id, a.role, a.runtime, a.precision, size(a.size_bytes), verification_cell(a.verification),
                     f"{100 * acc:.1f}%" if acc is not None else "-",
                     f"{lat['p50']:.3f}" if lat else "-", f"{lat['p90']:.3f}" if lat else "-",
                     str(b["runs"]) if b else "-"])
    for f in manifest.failed_candidates:
        rows.append([f["id"], "failed", "", "", "", f["error"][:60], "", "", "", ""])
    m = manifest.model
    title = (f"{m['name']} -> target '{manifest.target['name']}'  ({bundle})\n"
             f"reference: {m['reference']}; held-out data: {m['verify_data']}"
             + (f"; source accuracy {100 * m['source_accuracy']:.1f}%" if m.get("source_accuracy") is not None else ""))
    where = ""
    if bench:
        any_b = next(iter(bench.values()))
        where = (f"\nlatency: {any_b['threads']} thread(s), measured on {any_b['measured_on']}: "
                 f"{any_b['env']['cpu']['model']}")
    return render(["artifact", "role", "runtime", "precision", "size", "verification", "accuracy",
                   "p50 ms", "p90 ms", "runs"], rows, title) + where


def cmd_compile(args) -> int:
    from .pipeline import compile_model

    bundle, manifest = compile_model(args.model, args.target, args.out, args.weights)
    bench = {}
    if args.bench:
        ids = [a.id for a in manifest.usable()]
        bench = {r["artifact"]: r for r in _bench_all(bundle, manifest, ids, args.threads, args)}
        if args.json:
            _write_json(args.json, list(bench.values()))
    print(_summary(bundle, manifest, bench))
    return 0


def cmd_bench(args) -> int:
    from .bundle import open_bundle

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
    results = _bench_all(bundle, manifest, ids, args.threads, args)
    payload = results[0] if len(results) == 1 else {"results": results}
    if args.json:
        _write_json(args.json, payload)
    rows = [[r["artifact"], r["precision"], size(r["size_bytes"]), r["runs"], *(f"{r['latency_ms'][k]:.3f}" for k in
             ("p50", "p90", "p99", "mean", "std", "min")), f"{r['load_ms']:.1f}", f"{r['first_run_ms']:.2f}",
             f"{r['peak_rss_mb']:.0f}"] for r in results]
    env = results[0]["env"]
    print(render(["artifact", "precision", "size", "runs", "p50 ms", "p90 ms", "p99 ms", "mean", "std", "min",
                  "load ms", "first ms", "peak RSS MB"], rows,
                 f"{bundle}: {results[0]['threads']} thread(s) on {env['cpu']['model']} "
                 f"({results[0]['measured_on']}); {env['runtime']} {env['runtime_version']}"))
    return 0


def cmd_verify(args) -> int:
    """Re-check a bundle here: integrity, then each usable artifact on its runtime against the self-test vectors."""
    from .bundle import open_bundle
    from .errors import VerificationFailed
    from .selftest import check_artifact

    bundle = Path(args.bundle)
    manifest = open_bundle(bundle)
    rows, bad = [], []
    for a in manifest.usable():
        metrics, fails = check_artifact(bundle, manifest, a)
        m = next(iter(metrics.values()), {"cosine": float("nan"), "max_abs": float("nan")})
        rows.append([a.id, "failed" if fails else "passed", f"{m['cosine']:.6f}", f"{m['max_abs']:.2e}",
                     "; ".join(fails)])
        bad += [f"{a.id}: {f}" for f in fails]
    print(render(["artifact", "self-test", "cosine", "max abs err", "failures"], rows,
                 f"{bundle}: sha256 of every file OK; {(manifest.selftest or {}).get('samples', 0)} "
                 "self-test vectors per artifact"))
    if bad:
        raise VerificationFailed("self-test failed: " + "; ".join(bad))
    return 0


def cmd_targets(args) -> int:
    from . import deps
    from .converters import toolchains
    from .runtimes import toolchain_of
    from .targets import all_profiles

    rows = []
    for p in all_profiles():
        for i, c in enumerate(p.candidates):
            need = list(dict.fromkeys([*toolchains(c.converter), toolchain_of(c.runtime)]))
            missing = [t for t in need if not deps.available(t)]
            rows.append([p.name if i == 0 else "", "primary" if i == 0 else f"fallback {i}", c.runtime, c.precision,
                         c.converter, "yes" if not missing else f"no: {deps.TOOLCHAINS[missing[0]].install}",
                         p.description if i == 0 else ""])
    print(render(["target", "preference", "runtime", "precision", "converter", "installed", "description"], rows))
    return 0


def cmd_doctor(args) -> int:
    from . import deps

    rows = [[t.name, deps.version(t.name) or "MISSING", t.purpose, "" if deps.available(t.name) else t.install]
            for t in deps.TOOLCHAINS.values()]
    print(render(["toolchain", "version", "used for", "install with"], rows, f"edgekit {__version__}"))
    return 0


COMMANDS = {"compile": cmd_compile, "bench": cmd_bench, "verify": cmd_verify, "targets": cmd_targets,
            "doctor": cmd_doctor}


def _add_bench_opts(p):
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default 1: reproducible numbers)")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds (default 0.5)")
    p.add_argument("--min-runs", type=int, default=50, help="at least this many timed runs (default 50)")
    p.add_argument("--min-time", type=float, default=1.0, help="and at least this many seconds (default 1)")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="edgekit", description="Compile a model for edge targets; verify; benchmark.")
    ap.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("compile", help="model -> verified bundle for a target")
    c.add_argument("--model", help="builtin:NAME | file.py:factory | pkg.module:factory | model.onnx | model.pt2 "
                                   "(default builtin:digits)")
    c.add_argument("--target", required=True, help="target profile (see `edgekit targets`)")
    c.add_argument("--out", help="bundle folder (default build/MODEL-TARGET)")
    c.add_argument("--weights", help="state dict (.pt/.pth) for a factory's module; loaded weights-only")
    c.add_argument("--bench", action="store_true", help="benchmark every verified artifact after compiling")
    _add_bench_opts(c)
    b = sub.add_parser("bench", help="benchmark a bundle's artifact(s) on this machine")
    b.add_argument("bundle")
    b.add_argument("--artifact", help="artifact id (default: the primary)")
    b.add_argument("--all", action="store_true", help="every usable artifact")
    _add_bench_opts(b)
    v = sub.add_parser("verify", help="check a bundle's files and re-run its self-test vectors here")
    v.add_argument("bundle")
    sub.add_parser("targets", help="list target profiles and whether their toolchains are installed")
    sub.add_parser("doctor", help="toolchains: installed version or the install command")
    return ap


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except EdgekitError as e:
        print(f"edgekit: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
