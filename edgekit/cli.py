"""`python -m edgekit COMMAND`: compile, check, bench, verify, report, history, sweep, explain, distill,
build, gate, package, keygen, sign, targets, doctor.

Over 500 lines on purpose: every command's arguments and dispatch in one file is the readable list
of what edgekit does; the work of each command lives in its own module, imported inside it.
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
    shapes = getattr(args, "shapes", None) or [None]
    for aid in artifact_ids:
        for shape in shapes:
            at = f" at {', '.join(f'{k}={v}' for k, v in shape.items())}" if shape else ""
            print(f"[edgekit] bench {aid}{at} ({threads} thread{'s' if threads != 1 else ''}) ...", file=sys.stderr,
                  flush=True)
            results.append(run_step(f"bench-{aid}", "edgekit.bench:measure",
                                    {"bundle_dir": str(bundle), "artifact_id": aid, "threads": threads,
                                     "warmup_s": getattr(args, "warmup", WARMUP_S),
                                     "min_runs": getattr(args, "min_runs", MIN_RUNS),
                                     "min_time_s": getattr(args, "min_time", MIN_TIME_S), "progress": True,
                                     "keep_samples": getattr(args, "keep_samples", False),
                                     "profile": getattr(args, "profile", False),
                                     "runtime": getattr(args, "runtime", None), "shape": shape},
                                    _log_dir(bundle), stderr_to_terminal=True))
    return results


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


def _write_json(path: str, payload) -> None:
    from .bundle import write_atomically

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(p, json.dumps(payload, indent=2))


# Options naming a file a command writes its results to. Checked before any work, so a read-only or
# mistyped path costs a usage error, not the results of a long bench.
RESULT_FILES = ("json", "markdown", "html")


def _check_result_paths(args) -> None:
    for opt in RESULT_FILES:
        value = getattr(args, opt, None)
        if not isinstance(value, str) or not value:
            continue
        p = Path(value)
        if p.is_dir():
            raise UsageError(f"--{opt} {value} is a folder; give a file name")
        if not _writable(p):
            raise UsageError(f"--{opt} {value}: cannot write there (read-only, permission denied or not a folder); "
                             "checked before any work, so nothing is lost", hint="choose a path you can write to")


def _writable(p: Path) -> bool:
    """Whether `p` can be written, found by trying: os.access answers yes for root on /proc or a
    read-only bind mount. An existing file is opened for append (nothing written); otherwise a probe
    file is created and removed at once in the nearest existing folder on the way to `p`, which is
    where the result (and any folders leading to it) will be written anyway."""
    import tempfile

    try:
        if p.exists():
            with open(p, "ab"):
                return True
        parent = next((d for d in [p.parent, *p.parent.parents] if d.exists()), Path("."))
        if not parent.is_dir():
            return False
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".edgekit-probe-"):
            return True
    except OSError:
        return False


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    if m.get("distillation"):  # compile --distill-from
        from .distill import describe

        title += "\n" + describe(m["distillation"])
    where = ""
    if bench:
        any_b = next(iter(bench.values()))
        where = (f"\nlatency: {any_b['threads']} thread(s), measured on {any_b['measured_on']}: "
                 f"{any_b['env']['cpu']['model']}")
    caveats = "".join(f"\n* {a.id}: {c}" for a in manifest.artifacts for c in a.verification.caveats)
    return render(["artifact", "role", "runtime", "precision", "size", "verification", "accuracy",
                   "p50 ms", "p90 ms", "runs"], rows, title) + caveats + where


def _distill_opts(args) -> dict | None:
    """compile's --distill-* options for pipeline.compile_model; without --distill-from they are a usage error."""
    given = {k: getattr(args, f"distill_{k}") for k in ("data", "seeds", "epochs", "steps")}
    given = {k: v for k, v in given.items() if v is not None}
    if not args.distill_from:
        if given:
            raise UsageError(f"{', '.join('--distill-' + k for k in given)} given without --distill-from "
                             "TEACHER_SPEC, the distillation stage they set up",
                             hint="python -m edgekit compile --help")
        return None
    return {"teacher": args.distill_from, **given}


def cmd_compile(args) -> int:
    from .pipeline import compile_model

    bundle, manifest = compile_model(args.model, args.target, args.out, args.weights, args.fallback_model,
                                     calibration=args.calibration, layout=args.layout,
                                     op_check=not args.no_preflight, precision=args.precision,
                                     calibration_method=args.calibration_method, percentile=args.percentile,
                                     distill=_distill_opts(args), inputs=args.input,
                                     verify_data=args.verify_data, example=args.example)
    bench = {}
    auto = args.precision == "auto"
    if args.bench or (auto and manifest.target.get("host_is_target")):
        ids = [a.id for a in manifest.usable()]
        bench = {r["artifact"]: r for r in _bench_all(bundle, manifest, ids, args.threads, args)}
        if args.json:
            _write_json(args.json, list(bench.values()))
    if auto:
        from .primary import auto_primary

        print(auto_primary(bundle, manifest, bench), file=sys.stderr)
    print(_summary(bundle, manifest, bench))
    pending = manifest.target["primary_choice"].get("on_device")
    if pending:
        print(f"edgekit: {', '.join(pending)} run on the device ({manifest.target['device']}); copy the bundle "
              f"there and run `python -m edgekit build {bundle}` to build and verify them; until then the primary "
              f"is {manifest.usable()[0].id}", file=sys.stderr)
    if manifest.target["primary_choice"].get("degraded"):
        from .errors import EXIT_DEGRADED

        pref = manifest.target["primary_choice"]["preferred"]
        why = next((f["error"] for f in manifest.failed_candidates if f["id"] == pref),
                   next((a.verification.reason for a in manifest.artifacts if a.id == pref), "see the manifest"))
        print(f"edgekit: degraded: the preferred artifact {pref} failed ({why}); the bundle's primary is the verified "
              f"fallback {manifest.usable()[0].id}", file=sys.stderr)
        return EXIT_DEGRADED
    return 0


def cmd_report(args) -> int:
    from .report import make_report

    args.keep_samples, args.profile = True, True  # distributions and per-op breakdown need both
    return make_report(args.bundles, args.html, args.markdown, args.json, args, args.sweep or [],
                       args.history, args.model, args.target)


def cmd_check(args) -> int:
    from .opcheck import check_model

    return check_model(args.model, args.target, args.weights, args.json, args.input)


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
    if args.choose_primary:
        from .primary import check_can_choose

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
        from .remote import remote_bench

        print(f"[edgekit] bench on {args.device} ...", file=sys.stderr, flush=True)
        results = [remote_bench(args.device, bundle, aid, args.threads, args.warmup, args.min_runs, args.min_time,
                                identity=args.identity, device_python=args.device_python,
                                known_hosts=args.known_hosts) for aid in ids]
        for r in results:
            for w in r.get("warnings", []):
                print(f"edgekit: warning: {w}", file=sys.stderr)
    else:
        results = _bench_all(bundle, manifest, ids, args.threads, args)
    if args.choose_primary:
        from .primary import choose_primary

        from .primary import timings

        choice = choose_primary(bundle, manifest, results)
        print(f"[edgekit] primary: {manifest.usable()[0].id} (fastest p50 on {choice['measured_on']}: "
              f"{timings(choice)})", file=sys.stderr)
    _record(args, "bench", results, manifest)
    payload = results[0] if len(results) == 1 else {"results": results}
    if args.json:
        _write_json(args.json, payload)
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


VERIFY_HEAD = ["artifact", "self-test", "cosine", "max abs err", "failures"]


def _verify_rows(results) -> tuple[list, list]:
    """(artifact id, metrics, failures) per artifact -> the verify table's rows, and the failures."""
    rows, bad = [], []
    for aid, metrics, fails in results:
        m = next(iter((metrics or {}).values()), {"cosine": float("nan"), "max_abs": float("nan")})
        rows.append([aid, "failed" if fails else "passed", f"{m['cosine']:.6f}", f"{m['max_abs']:.2e}", "; ".join(fails)])
        bad += [f"{aid}: {f}" for f in fails]
    return rows, bad


def _verify_done(args, manifest, rows: list, bad: list, title: str, measured_on: str, extra_rows=()) -> int:
    """Print the verify table, record each result in the history, raise if any failed."""
    from .errors import VerificationFailed

    print(render(VERIFY_HEAD, rows + list(extra_rows), title))
    _record(args, "verify", [{"artifact": r[0], "status": r[1], "failures": r[4], "measured_on": measured_on,
                              "cosine": r[2]} for r in rows], manifest)
    if bad:
        raise VerificationFailed(f"self-test failed ({measured_on}): " + "; ".join(bad))
    return 0


def _verify_in_chromium(bundle: Path, manifest, args) -> int:
    """`verify --device chromium`: each TF.js artifact's self-test in a page of headless Chromium."""
    from .runtimes import open_runner
    from .selftest import check_runner

    web = [a for a in manifest.usable() if a.runtime == "tfjs"]
    if not web:
        raise UsageError(f"{bundle} has no TF.js artifact to run in Chromium", hint="compile with --target browser")
    agent = []

    def results():
        for a in web:
            runner = open_runner("tfjs-chromium", bundle / a.path, None, a.inputs, a.outputs, a.input_layout)
            try:
                agent[:] = [runner.user_agent]
                yield (a.id, *check_runner(runner, bundle, manifest, a))
            finally:
                runner.close()

    rows, bad = _verify_rows(results())
    return _verify_done(args, manifest, rows, bad, f"{bundle} in headless Chromium ({agent[0]})", "headless Chromium")


def cmd_verify(args) -> int:
    """Re-check a bundle here: integrity, then each usable artifact on its runtime against the self-test vectors."""
    from .bundle import open_bundle
    from .selftest import check_artifact

    bundle = Path(args.bundle)
    _check_bundle_signature(bundle, args)
    manifest = open_bundle(bundle)
    if args.device == "chromium":
        return _verify_in_chromium(bundle, manifest, args)
    if args.device:
        from .remote import remote_verify

        rows, bad = [], []
        for r in remote_verify(args.device, bundle, identity=args.identity, device_python=args.device_python,
                               known_hosts=args.known_hosts):
            m = next(iter((r.get("metrics") or {}).values()), {"cosine": float("nan"), "max_abs": float("nan")})
            rows.append([r["artifact"], r["status"], f"{m['cosine']:.6f}", f"{m['max_abs']:.2e}",
                         "; ".join(r.get("failures") or []) or r.get("skipped", "")])
            bad += [f"{r['artifact']}: {f}" for f in r.get("failures") or []]
        return _verify_done(args, manifest, rows, bad, f"{bundle} on {args.device}: sha256 of every file OK on the device",
                            f"device {args.device}")
    rows, bad = _verify_rows((a.id, *check_artifact(bundle, manifest, a)) for a in manifest.usable())
    waiting = [[a.id, "on-device", "-", "-", f"runs on the device: python -m edgekit build {bundle} there"]
               for a in manifest.artifacts if a.role == "on-device"]
    return _verify_done(args, manifest, rows, bad, f"{bundle}: sha256 of every file OK; "
                        f"{(manifest.selftest or {}).get('samples', 0)} self-test vectors per artifact", "host",
                        extra_rows=waiting)


def _check_bundle_signature(bundle: Path, args) -> None:
    """verify --require-signature / --trusted-key: the signature first, before anything runs."""
    from .signing import SIGNATURE, check_signed_bundle

    if args.require_signature and not args.trusted_key:
        raise UsageError("--require-signature needs the keys you trust: a signature by any other key proves nothing",
                         hint="--trusted-key SIGNER.pub (repeat for several)")
    if args.trusted_key and (args.require_signature or (bundle / SIGNATURE).is_file()):
        ok = check_signed_bundle(bundle, args.trusted_key)
        print(f"[edgekit] signature OK: signed by trusted key {ok['key_id']} ({ok['signed']})", file=sys.stderr)
    elif (bundle / SIGNATURE).is_file():
        print(f"[edgekit] note: {bundle} is signed, but no --trusted-key was given, so the signature is not "
              "checked", file=sys.stderr)


def cmd_keygen(args) -> int:
    from .signing import generate_key, load_public_keys

    priv, pub = generate_key(args.out)
    (kid,) = load_public_keys([pub])
    print(f"private key: {priv} (keep it secret; mode 0600)\npublic key:  {pub} (give it to whoever checks; "
          f"key id {kid})")
    return 0


def cmd_sign(args) -> int:
    from .signing import SIGNATURE, sign_bundle

    rec = sign_bundle(args.bundle, args.key)
    print(f"{Path(args.bundle) / SIGNATURE}: ed25519 signature by key {rec['key_id']} over manifest.json "
          f"(sha256 {rec['manifest_sha256'][:16]}...), which lists every file's sha256")
    return 0


def _record(args, kind: str, results: list[dict], manifest) -> None:
    """Every bench/verify result goes into the history database, unless --no-history. A history
    that cannot be written is a warning: it never costs the user the result itself."""
    if getattr(args, "no_history", False):
        return
    from . import history

    try:
        for r in results:
            history.record(kind, r, manifest, args.history)
    except Exception as e:  # noqa: BLE001
        print(f"edgekit: warning: result not recorded in the history ({args.history or history.default_path()}): "
              f"{type(e).__name__}: {e}", file=sys.stderr)


def cmd_history(args) -> int:
    from . import history

    found = history.trends(args.history, args.model, args.target, args.artifact, args.min_effect)
    if not found:
        print(f"no bench results in {args.history or history.default_path()}"
              + (" for that selection" if args.model or args.target or args.artifact else ""))
        return 0
    print(render(history.TREND_HEAD, history.trend_rows(found), f"history: {args.history or history.default_path()}"))
    if args.json:
        _write_json(args.json, found)
    return 0


def cmd_build(args) -> int:
    """Exit 0 when every artifact this device can run passed, 12 when some failed."""
    from .device_build import build
    from .errors import EXIT_DEGRADED

    manifest, rows = build(args.bundle, args.workspace_mb)
    print(render(["artifact", "on this device", "detail"], rows, f"build {args.bundle}"))
    print(_summary(args.bundle, manifest, {}))
    return EXIT_DEGRADED if any(r[1] == "failed" for r in rows) else 0


def cmd_distill(args) -> int:
    from .distill import distill

    out = args.out or f"build/distill/{args.student.split(':')[-1]}"
    rep = distill(args.teacher, args.student, args.data, out, args.seeds, args.epochs, args.steps,
                  args.temperature, args.alpha, args.lr)
    t, s, summ = rep["teacher"], rep["student"], rep["summary"]
    metric = "accuracy" if "accuracy" in summ["distilled"] else next(iter(summ["distilled"]))
    rows = [["teacher", t["spec"], t["params"], size(t["state_dict_bytes"]), f"{t['latency_ms']:.3f}",
             f"{t['held_out'].get(metric, 1.0):.4f}", ""]]
    for side in ("distilled", "baseline"):
        if side in summ:
            m = summ[side][metric]
            rows.append([f"student, {side}", s["spec"], s["params"], size(s["state_dict_bytes"]),
                         f"{s['latency_ms']:.3f}" if side == "distilled" else "", f"{m['mean']:.4f}",
                         f"{m['min']:.4f}..{m['max']:.4f}"])
    print(render(["model", "spec", "params", "size", "eager ms", f"{metric} (mean)", "spread over seeds"], rows,
                 f"distill: {len(rep['runs'])} seed(s), held-out {rep['held_out']['data']}; weights: {out}/student.pt"))
    print(f"compile it: python -m edgekit compile --model {args.student} --weights {out}/student.pt --target cpu")
    return 0


def cmd_explain(args) -> int:
    from .explain import explain

    return explain(args.bundle, args.artifact, args.json)


def cmd_sweep(args) -> int:
    """Exit 0 when every cell built a verified artifact, 12 when some did, 6 when none did."""
    from .errors import EXIT_DEGRADED
    from .sweep import TABLE, sweep, table_lines

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    out, rows = sweep(args.matrix, args.out, args.workers, args.ray, args.force, args.history, not args.no_history)
    print(render(TABLE, table_lines(rows), f"sweep: {out / 'sweep.json'}"))
    if args.json:
        _write_json(args.json, rows)
    failed = sum(r["status"] == "failed" for r in rows)
    return 0 if not failed else EXIT_DEGRADED if failed < len(rows) else 6


def cmd_package(args) -> int:
    from .package import package_bundle

    out = package_bundle(args.bundle, args.platform, args.out, args.artifact)
    pkg = json.loads((out / "model.json").read_text())
    for m in pkg["models"]:
        print(f"{m['role']:8s} {m['file']}  ({m['runtime']}, {m['precision']}, {m['size_bytes'] / 1024:.1f} kB)")
    check = (f"import {{loadEdgekitModel}} from './edgekit-web.js' (self-tests on load; serve {out} over HTTP)"
             if args.platform == "web" else f"python {out / 'check_model.py'}")
    print(f"{out}: model.json, {pkg['selftest']['samples']} self-test vectors; check: {check}")
    return 0


def cmd_targets(args) -> int:
    from . import deps
    from .pipeline import _missing_toolchains, candidate_toolchains
    from .targets import all_profiles

    rows = []
    for p in all_profiles():
        for i, c in enumerate(p.candidates):
            missing = _missing_toolchains(c)
            on_device = [t for t in candidate_toolchains(c) if deps.TOOLCHAINS[t].where == "device"
                         and not deps.available(t)]
            role = "primary" if i == 0 else ("--precision " + c.precision if c.on_request else f"fallback {i}")
            installed = (f"no: {deps.TOOLCHAINS[missing[0]].install}" if missing else
                         f"prepared here; {', '.join(on_device)} step runs on the device (edgekit build)" if on_device
                         else "converted and checked here; predicts on macOS only (edgekit build on a Mac)"
                         if c.runtime == "coreml" and sys.platform != "darwin" else "yes")
            rows.append([p.name if i == 0 else "", role, c.runtime, c.precision, c.converter, installed,
                         p.description if i == 0 else ""])
    print(render(["target", "preference", "runtime", "precision", "converter", "installed", "description"], rows))
    return 0


def cmd_doctor(args) -> int:
    from . import deps

    rows = [[t.name, deps.version(t.name) or ("MISSING" if t.where == "host" else "not here (device only)"),
             t.purpose, "" if deps.available(t.name) else t.install] for t in deps.TOOLCHAINS.values()]
    print(render(["toolchain", "version", "used for", "install with"], rows, f"edgekit {__version__}"))
    return 0


def cmd_gate(args) -> int:
    """Exit 0 pass, 1 regression, 2 usage error (any problem with the inputs themselves)."""
    import os

    from .errors import EdgekitError as _E
    from .gate import GateConfig, markdown, run_baseline_file, run_gate

    if bool(args.baseline) == bool(args.baseline_file):
        raise UsageError("give exactly one of --baseline BUNDLE and --baseline-file BENCH.json")
    cfg = GateConfig(blocks=args.blocks, min_effect=args.min_effect, block_seconds=args.block_seconds,
                     confirm=not args.no_confirm, max_size_growth=args.max_size_growth,
                     max_accuracy_drop=args.max_accuracy_drop)
    if cfg.blocks < 5:
        raise UsageError("--blocks must be at least 5 (20 or more recommended)")
    print(f"[edgekit] gate: {cfg.blocks} interleaved blocks, 1 thread ...", file=sys.stderr, flush=True)
    try:
        res = (run_gate(args.baseline, args.candidate, cfg) if args.baseline
               else run_baseline_file(args.baseline_file, args.candidate, cfg))
    except UsageError:
        raise
    except _E as e:  # a missing/corrupt bundle is a problem with the gate's inputs: usage error
        raise UsageError(e.message, hint=e.hint) from None
    md = markdown(res, cfg)
    print(md)
    for path in filter(None, [args.markdown, os.environ.get("GITHUB_STEP_SUMMARY")]):
        with open(path, "a") as f:
            f.write(md)
    if args.json:
        _write_json(args.json, {"regression": res.regression, "latency_regression": res.latency_regression,
                                "attempts": res.attempts, "checks": res.checks, "caveats": res.caveats})
    return 1 if res.regression else 0


COMMANDS = {"compile": cmd_compile, "check": cmd_check, "report": cmd_report, "history": cmd_history, "sweep": cmd_sweep, "explain": cmd_explain, "build": cmd_build, "distill": cmd_distill, "bench": cmd_bench, "verify": cmd_verify, "gate": cmd_gate,
            "package": cmd_package, "targets": cmd_targets, "doctor": cmd_doctor, "keygen": cmd_keygen,
            "sign": cmd_sign}


def _add_device_opts(p):
    p.add_argument("--device", help="`chromium`: in a page of headless Chromium on this host (TF.js artifacts); or a "
                   "remote device: ssh://user@host[:port] (the device needs python3, "
                                    "numpy and the artifact's runtime)")
    p.add_argument("--identity", help="SSH private key for --device")
    p.add_argument("--device-python", default="python3", help="python on the device (default python3)")
    p.add_argument("--known-hosts", help="known_hosts file for --device (default: ssh's own)")


def _add_input_opt(p):
    p.add_argument("--input", action="append", metavar="NAME:SHAPE[:DTYPE]",
                   help="an .onnx model input's shape, e.g. image:1x3x640x640 or input_ids:1x128:int64 (repeat per "
                        "input); required for inputs with symbolic dims, which edgekit never sets to a made-up size; "
                        "or NAME=VALUE, a fixed value for a control input (e.g. sr=16000)")


def _add_history_opts(p):
    p.add_argument("--history", help="record results in this SQLite file (default $EDGEKIT_HISTORY or "
                   "~/.local/share/edgekit/history.sqlite)")
    p.add_argument("--no-history", action="store_true", help="do not record the results")


def _add_bench_opts(p):
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="runtime threads, 1 or more (default 1: reproducible numbers)")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds (default 0.5)")
    p.add_argument("--min-runs", type=_positive_int, default=50, help="at least this many timed runs (default 50)")
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
    _add_input_opt(c)
    c.add_argument("--verify-data", metavar="PATH", help="real held-out inputs to verify every artifact on, in any "
                   "--calibration form (.npz named like the inputs, .npy, image folder, .txt); replaces the source's own "
                   "or made-up ones; required for .onnx models with integer inputs (never invented)")
    c.add_argument("--example", metavar="PATH", help="one real input (the first sample of PATH, any --calibration "
                   "form) to build and optimize artifacts at, instead of the source's own or a made-up one; an .onnx "
                   "source's made-up verification inputs then copy its value ranges")
    c.add_argument("--fallback-model", help="a different (e.g. smaller) model with the same inputs/outputs, compiled "
                                            "and verified as the last fallback")
    c.add_argument("--calibration", help="representative inputs for INT8: a .npy (one input), an .npz (arrays named "
                   "like the inputs) or a folder of them, a folder of images (the model's recorded preprocessing), "
                   "or a .txt file (one sample per line, the model's tokenizer); default: the model's own "
                   "calibration set, else its example")
    c.add_argument("--layout", choices=["nchw", "nhwc"], default="nchw",
                   help="input layout of LiteRT artifacts: nhwc makes 4-D inputs channel-last (default nchw, as the model)")
    c.add_argument("--precision", help="build only this precision's candidates (fp32, int8), including those the "
                   "target builds on request only (e.g. cpu's ONNX Runtime INT8); auto: every candidate, and where "
                   "this host is the target the fastest verified one becomes primary; default: the target's default set")
    c.add_argument("--calibration-method", choices=["minmax", "percentile", "entropy", "mse"],
                   help="how INT8 activation ranges are chosen, mapped onto each quantizer's own calibrators (ONNX "
                   "Runtime: minmax, percentile, entropy; PT2E: mse); a candidate whose quantizer lacks it is skipped "
                   "before any work, saying what it supports, and none able to use it is a usage error "
                   "(default: each quantizer's own default)")
    c.add_argument("--percentile", type=float, help="with --calibration-method percentile (default 99.999)")
    c.add_argument("--no-preflight", action="store_true", help="convert candidates even when the pre-flight op "
                   "check says they cannot (the check still runs and is recorded)")
    c.add_argument("--bench", action="store_true", help="benchmark every verified artifact after compiling")
    _add_bench_opts(c)
    dg = c.add_argument_group("distillation stage", "train --model (the student) from a teacher first, as "
                              "`edgekit distill` does, then compile it with those weights; the weights and "
                              "report go into the bundle (distill/), the manifest records teacher vs student "
                              "(model.distillation)")
    dg.add_argument("--distill-from", metavar="TEACHER_SPEC", help="the teacher's model spec, e.g. builtin:digits "
                    "(not with --weights: the stage makes them)")
    dg.add_argument("--distill-data", metavar="SPEC", help="transfer inputs, as distill --data (default for "
                    "built-in teachers: their own training data)")
    dg.add_argument("--distill-seeds", type=int, metavar="N", help="independent runs, the best one compiled "
                    "(default 1: the 3-seed comparison with mean and spread is `edgekit distill`'s report)")
    one = dg.add_mutually_exclusive_group()
    one.add_argument("--distill-epochs", type=int, metavar="N", help="classifier teachers: epochs (default 60)")
    one.add_argument("--distill-steps", type=int, metavar="N", help="encoder teachers: optimizer steps (default 400)")
    ck = sub.add_parser("check", help="pre-flight: which operators each candidate of a target can convert and run")
    ck.add_argument("--model", help="as for compile (default builtin:digits)")
    ck.add_argument("--target", required=True, help="target profile (see `edgekit targets`)")
    ck.add_argument("--weights", help="state dict for a factory's module")
    _add_input_opt(ck)
    ck.add_argument("--json", help="write the full report (every operator, verdict and table) as JSON")
    rp = sub.add_parser("report", help="benchmark bundles' artifacts and write one self-contained HTML page "
                        "(+ Markdown summary) with plots")
    rp.add_argument("bundles", nargs="*", metavar="BUNDLE")
    rp.add_argument("--sweep", action="append", metavar="SWEEP.json", help="a finished sweep's results (repeat)")
    rp.add_argument("--history", nargs="?", const="", metavar="DB", help="latency over time from the history "
                    "database (default $EDGEKIT_HISTORY or ~/.local/share/edgekit/history.sqlite), with change points")
    rp.add_argument("--model", help="with --history: only this model")
    rp.add_argument("--target", help="with --history: only this target")
    rp.add_argument("--html", required=True, help="the page to write (self-contained, no network)")
    rp.add_argument("--markdown", help="a Markdown summary for CI logs and pull requests")
    _add_bench_opts(rp)
    b = sub.add_parser("bench", help="benchmark a bundle's artifact(s) on this machine")
    b.add_argument("bundle")
    b.add_argument("--artifact", help="artifact id (default: the primary)")
    b.add_argument("--all", action="store_true", help="every usable artifact")
    b.add_argument("--choose-primary", action="store_true", help="make the fastest artifact measured on the target "
                   "the bundle's primary (needs --all; --device unless this host is the target)")
    _add_bench_opts(b)
    _add_device_opts(b)
    _add_history_opts(b)
    b.add_argument("--keep-samples", action="store_true", help="include every timed run in the JSON (samples_ms), "
                   "e.g. to use as `gate --baseline-file`")
    b.add_argument("--profile", action="store_true", help="per-operator times from the runtime's own profiler "
                   "(ONNX Runtime, ExecuTorch ETDump), in a separate run after the timed one")
    b.add_argument("--shape", action="append", metavar="DIM=SIZE[,DIM=SIZE]",
                   help="time a model with dynamic dims at these sizes (repeat for several), e.g. --shape seq=8 "
                        "--shape seq=128; dims not named stay at their opt size")
    g = sub.add_parser("gate", help="latency/size/accuracy regression gate: exit 0 pass, 1 regression, 2 usage error")
    g.add_argument("--baseline", help="bundle (or .onnx artifact) to compare against, measured side by side")
    g.add_argument("--baseline-file", help="bench JSON with samples_ms, recorded earlier (e.g. on a device)")
    g.add_argument("--candidate", required=True, help="bundle (or .onnx artifact) under test")
    g.add_argument("--blocks", type=int, default=20, help="interleaved ABBA blocks (default 20)")
    g.add_argument("--block-seconds", type=float, default=0.1, help="seconds per segment (default 0.1)")
    g.add_argument("--min-effect", type=float, default=0.05, help="smallest slowdown that fails (default 0.05 = 5%%)")
    g.add_argument("--max-size-growth", type=float, default=0.05, help="allowed size growth (default 0.05)")
    g.add_argument("--max-accuracy-drop", type=float, default=0.005, help="allowed accuracy drop (default 0.005)")
    g.add_argument("--no-confirm", action="store_true", help="do not rerun a flagged result before failing")
    g.add_argument("--markdown", help="append the Markdown summary to this file (also $GITHUB_STEP_SUMMARY)")
    g.add_argument("--json", help="write the full result as JSON")
    v = sub.add_parser("verify", help="check a bundle's files and re-run its self-test vectors here")
    v.add_argument("bundle")
    v.add_argument("--require-signature", action="store_true", help="fail (exit 13) unless the bundle is signed "
                   "by one of the --trusted-key keys and unchanged since")
    v.add_argument("--trusted-key", action="append", metavar="KEY.pub", help="a signer's public key you trust "
                   "(repeat); with a signed bundle, its signature is checked even without --require-signature")
    _add_device_opts(v)
    _add_history_opts(v)
    h = sub.add_parser("history", help="bench results over time per model/target/artifact/device, with a "
                       "change-point check that flags steps and slow creep")
    h.add_argument("--model")
    h.add_argument("--target")
    h.add_argument("--artifact")
    h.add_argument("--history", help="the SQLite file (default $EDGEKIT_HISTORY or "
                   "~/.local/share/edgekit/history.sqlite)")
    h.add_argument("--min-effect", type=float, default=0.05, help="smallest step reported (default 0.05 = 5%%)")
    h.add_argument("--json", help="write every series and its change point as JSON")
    sw = sub.add_parser("sweep", help="compile+verify+bench every cell of a models x targets x precisions (x devices) "
                        "matrix (TOML), locally or on a Ray cluster; results go to the history database")
    sw.add_argument("matrix", metavar="MATRIX.toml")
    sw.add_argument("--out", help="folder for the cells' bundles and sweep.json (default build/sweep-NAME)")
    sw.add_argument("--workers", type=int, help="local worker processes (default: half the CPU cores)")
    sw.add_argument("--ray", metavar="ADDRESS", help="run the cells on this Ray cluster (e.g. 127.0.0.1:6379; "
                    "needs pip install 'edgekit[sweep]' here and on the nodes)")
    sw.add_argument("--force", action="store_true", help="rerun cells whose inputs have not changed")
    sw.add_argument("--json", help="write the results table as JSON")
    _add_history_opts(sw)
    ex = sub.add_parser("explain", help="how each quantized artifact was made: static INT8's numbers, the layers "
                        "kept in float by the mixed-precision search and their share of the error")
    ex.add_argument("bundle")
    ex.add_argument("--artifact", help="one artifact id (default: all)")
    ex.add_argument("--json", help="write the recorded quantization details as JSON")
    ds = sub.add_parser("distill", help="train a smaller student from a teacher (Hinton KD for classifiers, "
                        "embedding distillation for encoders); report teacher vs student on held-out data")
    ds.add_argument("--teacher", required=True, help="model spec, e.g. builtin:digits")
    ds.add_argument("--student", required=True, help="model spec of the student, e.g. builtin:digits-small")
    ds.add_argument("--data", help="transfer inputs (.npy/.npz, image folder or .txt); default for built-in "
                                   "teachers: their own training data")
    ds.add_argument("--out", help="folder for student.pt and report.json (default build/distill/STUDENT)")
    ds.add_argument("--seeds", type=int, default=3, help="independent runs; the report gives mean and spread")
    ds.add_argument("--epochs", type=int, default=60, help="classifier epochs over the transfer data")
    ds.add_argument("--steps", type=int, default=400, help="encoder optimizer steps (batch 32)")
    ds.add_argument("--temperature", type=float, default=4.0, help="KD softmax temperature (classifiers)")
    ds.add_argument("--alpha", type=float, default=0.7, help="weight of the soft-target loss vs the labels")
    ds.add_argument("--lr", type=float, help="learning rate (default 2e-3 classifiers with Adam, 5e-4 encoders "
                                             "with AdamW, warm-up and linear decay)")
    bd = sub.add_parser("build", help="on the device: build deferred steps (TensorRT engine) and verify the bundle's "
                        "on-device artifacts here, then re-rank the bundle's roles")
    bd.add_argument("bundle")
    bd.add_argument("--workspace-mb", type=_positive_int, help="TensorRT builder workspace limit (default 1024)")
    k = sub.add_parser("package", help="what an app embeds: model file(s), model.json, self-test vectors")
    k.add_argument("bundle")
    k.add_argument("--for", dest="platform", required=True, choices=["android", "ios", "linux", "web"])
    k.add_argument("--out", required=True, help="package folder (written atomically)")
    k.add_argument("--artifact", action="append", help="artifact id to include (repeat; default: primary + one fallback)")
    kg = sub.add_parser("keygen", help="make an ed25519 key pair for signing bundles: KEY and KEY.pub")
    kg.add_argument("--out", required=True, metavar="KEY", help="private key file to create (never overwritten)")
    sg = sub.add_parser("sign", help="sign a bundle (ed25519 over its manifest, which lists every file's sha256)")
    sg.add_argument("bundle")
    sg.add_argument("--key", required=True, help="private key (PEM) from `edgekit keygen`")
    sub.add_parser("targets", help="list target profiles and whether their toolchains are installed")
    sub.add_parser("doctor", help="toolchains: installed version or the install command")
    return ap


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _check_result_paths(args)
        return COMMANDS[args.command](args)
    except EdgekitError as e:
        print(f"edgekit: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the disk said no (full, read-only, permissions): the user's to fix, in one line
        where = f" {e.filename}" if e.filename else ""
        print(f"edgekit: error: cannot read or write{where}: {e.strerror or e}", file=sys.stderr)
        return 1
    except RecursionError:  # a file nested deeper than any real one (a crafted manifest or graph)
        print("edgekit: error: an input file is nested too deeply to read; refused", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
