"""compile: load -> export -> artifact(s) -> verify -> bundle, each heavy step in a child process.

The parent never imports torch or a toolchain; it orders the steps, collects their results,
decides roles, and publishes the bundle atomically (edgekit.bundle.BundleWriter).
"""
from __future__ import annotations

import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, deps
from .bundle import BundleWriter, check_out_dir, sha256_file, size_bytes
from .claims import check_claims
from . import converters
from .errors import ConversionError, EdgekitError, ToolchainMissing, UsageError, VerificationFailed
from .isolate import run_step
from .manifest import Artifact, Manifest, TensorSpec, Verification, assign_roles, degraded
from .findings import finding, rewrite_for, where
from .opcheck import failure_message
from . import qat_policy
from .sources import DEFAULT_MODEL, preflight, require_real_values
from .steps import load_samples, save_samples
from .targets import all_profiles, get_profile

SELFTEST_SAMPLES = 4


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_out(spec: str, target: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(spec.split(":")[-1] if spec.startswith("builtin:") else spec).stem)
    return Path("build") / f"{slug.strip('-') or 'model'}-{target}"


def _build_all(candidates, info: dict, work: Path, writer: BundleWriter, logs: Path, profile,
               trust_preflight: bool = True, calibration_method: dict | None = None,
               qat_steps: int | None = None, qat_when_missed: bool = False) -> tuple[list, list]:
    """Convert + verify each candidate in its own child process; (artifacts, failed candidates).
    trust_preflight: a candidate the op check says cannot convert is recorded as failed, not tried.
    qat_when_missed (--precision auto): INT8 candidates that fine-tune do so when post-training misses."""
    artifacts, failed = [], []
    export = info["export"]
    verdicts = (info.get("preflight") or {}).get("verdicts", {})
    for c in candidates:
        verdict = verdicts.get(c.converter)
        if export.get("error") and converters.get(c.converter).needs_onnx:
            at = f" at {where(export['source'])}" if export.get("source") else ""
            failed.append({"id": c.id, "stage": "export", "error": f"ONNX export failed{at}: {export['error']}",
                           "hint": "; ".join(filter(None, [rewrite_for([{"op": "", "why": export["error"]}]),
                                                           f"full traceback in {logs / 'prepare.log'}"]))})
            _say_failed(failed[-1])
            continue
        if trust_preflight and verdict and verdict["status"] == "fails":
            failed.append({"id": c.id, "stage": "check", "error": failure_message(c.id, verdict),
                           "hint": ("this converter needs a PyTorch model (file.py:factory, a .pt2 export or "
                                    "builtin:NAME); the ONNX candidates of the target take this one")
                           if verdict.get("stage") == "source" else rewrite_for(verdict["unsupported"])
                           or "compile --no-preflight converts it anyway (the check reads the toolchain's own tables)"})
            _say_failed(failed[-1])
            continue
        fmt, suffix = converters.get(c.converter).format, converters.get(c.converter).suffix
        t1 = time.perf_counter()
        say(f"  {c.id}: convert ({c.converter}) + verify on {c.runtime} ...")

        def build(out_path: Path, steps: int | None, when_missed: bool, step: str = f"build-{c.id}") -> dict:
            return run_step(step, "edgekit.steps:build_candidate",
                            {"candidate": {"converter": c.converter, "runtime": c.runtime, "precision": c.precision,
                                           "options": dict(c.options), "variant": c.variant},
                             "workdir": str(work), "out_path": str(out_path),
                             "tolerance": profile.tolerance(c.precision).to_dict(),
                             "min_delegated_flops_share": profile.min_delegated_flops_share,
                             "calibration_method": calibration_method, "qat_steps": steps,
                             "qat_when_missed": when_missed}, logs)
        try:
            res = build(writer.path(f"artifacts/{c.id}{suffix}"), qat_steps if c.precision == "int8" else None,
                        qat_when_missed and qat_policy.fine_tunes(c))
        except EdgekitError as e:
            failed.append({"id": c.id, "stage": "convert/verify", "error": e.message, "hint": e.hint})
            _say_failed(failed[-1])
            continue
        if qat_when_missed:
            go, why_not = qat_policy.second_try(c, res)
            if go:
                res = _second_try(c, res, build, writer, suffix)
            elif why_not:
                res["converter"]["second_try"] = {"skipped": why_not}
                say(f"  {c.id}: post-training INT8 failed held-out verification; not fine-tuned: {why_not}")
        rel = f"artifacts/{c.id}{suffix}"
        if res["converter"].get("buckets"):  # static artifacts, one per shape: a folder (edgekit.steps.build_buckets)
            fmt, rel = f"{fmt}-buckets", f"artifacts/{c.id}.buckets"
        v = Verification(**res["verification"])
        if v.status == "failed" and verdict and verdict.get("risks"):  # the check saw it coming: say where
            v.reason += f"; pre-flight: {finding(verdict['risks'][0])}"
        path = writer.stage / rel
        artifacts.append(Artifact(
            id=c.id, role="", format=fmt, runtime=c.runtime, precision=c.precision, path=rel,
            sha256=sha256_file(path), size_bytes=size_bytes(path),
            inputs=[TensorSpec.from_dict(t) for t in res["inputs"]],
            outputs=[TensorSpec.from_dict(t) for t in res["outputs"]], verification=v,
            converter=_converter_record(c.converter, res["converter"]), input_layout=res["converter"].get("input_layout"),
            toolchain=deps.versions(dict.fromkeys(["torch", *c.toolchains()])),
        ))
        say(f"  {c.id}: verification {v.status} in {time.perf_counter() - t1:.1f} s"
            + (f" — {v.reason}" if v.reason else ""))
        if (v.status == "failed" and qat_steps is None and not qat_when_missed and qat_policy.fine_tunes(c)
                and not qat_policy.was_fine_tuned(res["converter"])):
            say(f"  {c.id}: compile --qat fine-tunes this INT8 graph against the FP32 model (quantization-aware; "
                "minutes on a CPU for an ImageNet CNN)")
    return artifacts, failed


def _second_try(c, first: dict, build, writer: BundleWriter, suffix: str) -> dict:
    """--precision auto: the post-training INT8 artifact failed held-out verification; build it again
    fine-tuned (edgekit.qat_policy) beside it, and keep the fine-tuned one only if it passes."""
    say(f"  {c.id}: post-training INT8 failed held-out verification; --precision auto fine-tunes it against the "
        f"FP32 model ({qat_policy.STEPS} steps, quantization-aware; minutes on a CPU for an ImageNet CNN) ...")
    aside = writer.path(f"artifacts/second-try/{c.id}{suffix}")
    try:
        second = build(aside, qat_policy.STEPS, False, step=f"build-{c.id}-fine-tuned")
    except EdgekitError as e:  # the post-training artifact stays; the record says what the second try hit
        say(f"  {c.id}: fine-tuning failed: {e.message.splitlines()[0][:300]}; the post-training artifact stays")
        first["converter"]["second_try"] = {"why": qat_policy.WHY,
                                            "error": e.message, "shipped": "post-training"}
        _remove(aside.parent)
        return first
    passed = second["verification"]["status"] == "passed"
    say(f"  {c.id}: fine-tuned: verification {second['verification']['status']}"
        + ("" if passed else f" — {second['verification'].get('reason', '')}; the post-training artifact stays"))
    record = qat_policy.second_try_record(first, second, "fine-tuned" if passed else "post-training")
    if passed:
        made = aside.with_suffix(".buckets") if second["converter"].get("buckets") else aside
        for old in (writer.stage / f"artifacts/{c.id}{suffix}", writer.stage / f"artifacts/{c.id}.buckets"):
            _remove(old)
        made.rename(writer.stage / "artifacts" / f"{c.id}{'.buckets' if made.suffix == '.buckets' else suffix}")
        second["verification"].setdefault("caveats", []).append(qat_policy.caveat(record))
        first = second
    _remove(aside.parent)
    first["converter"]["second_try"] = record
    return first


def _remove(path: Path) -> None:
    """A staged file or folder (inside the bundle being built; nothing else is ever removed here)."""
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _converter_record(key: str, info: dict) -> dict:
    """The artifact's converter record: `name` is always its Converter's name (what the contract
    test and tools key on); a converter's own name for its toolchain (litert-torch, coremltools,
    onnx2tf+tensorflowjs) is kept as `tool`."""
    tool = info.get("name")
    return {**info, "name": key, **({"tool": tool} if tool and tool != key else {})}


def _say_failed(f: dict) -> None:
    say(f"  {f['id']}: FAILED — {f['error']}" + (f"\n      try: {f['hint']}" if f.get("hint") else ""))


def _say_preflight(profile, info: dict) -> None:
    """One line per candidate the check has doubts about; nothing when all is well."""
    pre = info.get("preflight") or {}
    for c in profile.candidates:
        v = pre.get("verdicts", {}).get(c.converter)
        if v and v["status"] == "slow":
            cov = v.get("coverage") or {}
            share = f"{100 * cov['ops_share']:.0f}% of ops delegated; " if cov.get("ops_share") is not None else ""
            say(f"  check: {c.id}: converts, but {share}slow: {finding(v['not_accelerated'][0])}")
        elif v and v["status"] == "risky":
            say(f"  check: {c.id}: converts, but {finding(v['risks'][0])}")
        elif v and v["status"] == "unknown":
            say(f"  check: {c.id}: could not check ({v.get('error', '')}); conversion decides")


def _io(info: dict) -> tuple:
    return ([(t["name"], tuple(t["shape"]), t["dtype"]) for t in info["inputs"]],
            [(t["name"], tuple(t["shape"])) for t in info["outputs"]])


def _fallback_model(spec: str, main_info: dict, candidates, writer: BundleWriter, logs: Path, profile):
    """A different (e.g. smaller, distilled) model with the same inputs and outputs, compiled with the
    profile's first buildable candidate, verified against its own reference, with its own self-test."""
    from dataclasses import replace

    preflight(spec)
    work = writer.stage / "work-fallback-model"
    say(f"  fallback model {spec}: prepare ...")
    cand = replace(candidates[0], variant="fallback-model")
    info = run_step("prepare-fallback-model", "edgekit.steps:prepare",
                    {"spec": spec, "weights": None, "workdir": str(work),
                     "need_onnx": converters.get(cand.converter).needs_onnx}, logs)
    if _io(info) != _io(main_info):
        raise UsageError(f"--fallback-model {spec} must take the same inputs and give the same outputs as the model: "
                         f"it has {_io(info)}, the model has {_io(main_info)}")
    artifacts, failed = _build_all([cand], info, work, writer, logs, profile)
    for a in artifacts:
        a.model = {k: info[k] for k in ("name", "source", "sha256", "reference", "verify_data")}
        a.selftest = _write_selftest(writer, work, f"selftest-{a.id}.npz")
    shutil.rmtree(work, ignore_errors=True)
    return artifacts, failed


def _distill_stage(spec: str, opts: dict, writer: BundleWriter, logs: Path) -> tuple[str, dict]:
    """compile --distill-from: `edgekit distill`'s training in a child process (torch stays out of
    this one), writing into the staging folder: the weights and report are published with the
    bundle, or not at all. Returns (the student's weights, the manifest's model.distillation)."""
    from .distill import STAGE_DIR, STAGE_SEEDS, record

    out = writer.stage / STAGE_DIR
    t0 = time.perf_counter()
    say(f"  distill: {opts['teacher']} -> {spec} ...")
    args = {"teacher_spec": opts["teacher"], "student_spec": spec, "data": opts.get("data"), "out": str(out),
            "seeds": opts.get("seeds") or STAGE_SEEDS,
            **{k: opts[k] for k in ("epochs", "steps") if opts.get(k)}}  # else distill's own defaults
    try:
        report = run_step("distill", "edgekit.distill:distill", args, logs, stderr_to_terminal=True)
    except UsageError:  # e.g. teacher and student inputs differ: nothing worth keeping
        writer.discard()
        raise
    say(f"  distill: done in {time.perf_counter() - t0:.1f} s")
    return str(out / "student.pt"), record(report, out)


# Converters that can change an artifact's input layout (compile --layout nhwc).
LAYOUT_CONVERTERS = ("litert",)


def _with_layout(profile, layout: str | None):
    if not layout or layout == "nchw":
        return profile
    from dataclasses import replace

    if not any(c.converter in LAYOUT_CONVERTERS for c in profile.candidates):
        raise UsageError(f"--layout {layout} applies to LiteRT artifacts; target {profile.name!r} has none",
                         hint="targets with LiteRT: android, rpi")
    return replace(profile, candidates=tuple(
        replace(c, options={**c.options, "layout": layout}, variant=(c.variant + "-" if c.variant else "") + layout)
        if c.converter in LAYOUT_CONVERTERS else c for c in profile.candidates))


def _check_qat(profile, steps: int) -> None:
    """--qat needs an INT8 candidate whose converter fine-tunes (a usage error before any work if none);
    --qat 0 fine-tunes nothing, not even under --precision auto."""
    if steps < 0:
        raise UsageError(f"--qat {steps}: the number of fine-tuning steps must be 0 (never fine-tune) or more")
    if steps == 0:
        return
    if not any(qat_policy.fine_tunes(c) for c in profile.candidates):
        qat_targets = sorted(p.name for p in all_profiles() if any(qat_policy.fine_tunes(c) for c in p.candidates))
        raise UsageError(f"--qat fine-tunes INT8 candidates of the LiteRT and ExecuTorch converters; target "
                         f"{profile.name!r} builds none with these options",
                         hint=f"targets that have them: {', '.join(qat_targets)} (with --precision int8 or auto)")


def _lacking_calibration_method(profile, method: str | None) -> dict[str, str]:
    """{candidate id: why} for the INT8 candidates whose quantizer lacks `method`. When every INT8
    candidate lacks it, the request cannot be met at all: a usage error, before the model is loaded."""
    from .calibration.methods import unsupported

    if not method:
        return {}
    int8 = [c for c in profile.candidates if c.precision == "int8"]
    lacking = {c.id: why for c in int8 if (why := unsupported(c.converter, method))}
    if int8 and len(lacking) == len(int8):
        raise UsageError(f"--calibration-method {method}: no INT8 candidate of target {profile.name!r} can use it: "
                         + "; ".join(dict.fromkeys(lacking.values())),
                         hint="leave --calibration-method out for each quantizer's default")
    return lacking


def compile_model(spec: str | None, target: str, out: str | None = None, weights: str | None = None,
                  fallback_model: str | None = None, calibration: str | None = None,
                  layout: str | None = None, op_check: bool = True,
                  precision: str | None = None, calibration_method: str | None = None,
                  percentile: float | None = None, distill: dict | None = None,
                  inputs: list[str] | None = None, verify_data: str | None = None,
                  example: str | None = None, selftest_samples: int | None = None,
                  qat: int | None = None) -> tuple[Path, Manifest]:
    """qat: fine-tune the INT8 candidates whose converter can (LiteRT, ExecuTorch) this many steps
    (converters/qat.py); without a precision it builds INT8 (on-request candidates included). qat=0:
    never fine-tune, not even where --precision auto would (edgekit.qat_policy).
    distill: {"teacher": SPEC, and optionally "data", "seeds", "epochs", "steps"}: train `spec` (the
    student) from the teacher first (compile --distill-from), then compile it with those weights.
    selftest_samples: held-out samples kept as the bundle's self-test vectors (default 4)."""
    spec = spec or DEFAULT_MODEL
    if qat and precision is None:
        precision = "int8"  # fine-tuning is for INT8: build those, the on-request ones included
    # Unknown target or a precision it lacks fails here, before any work.
    profile = _with_layout(get_profile(target).for_precision(precision), layout)
    if qat is not None:
        _check_qat(profile, qat)
    if distill:  # first: --weights with --distill-from is a conflict, whatever the weights file
        from .distill import check_stage

        check_stage(distill["teacher"], spec, weights, distill.get("data"),
                    **{k: distill.get(k) for k in ("seeds", "epochs", "steps")})
    onnx_shapes = preflight(spec, weights, inputs)  # unsafe files, symbolic dims without --input: before any output
    for opt, value in (("--verify-data", verify_data), ("--example", example)):
        if value and not Path(value).exists():
            raise UsageError(f"{opt} {value}: no such file or folder")
    require_real_values(spec, onnx_shapes, inputs, verify_data)
    if (calibration_method or percentile is not None) and "int8" not in [c.precision for c in profile.candidates]:
        raise UsageError(f"--calibration-method applies to INT8 candidates; target {target!r} builds none with these "
                         "options", hint="add --precision int8")
    if percentile is not None and not (calibration_method == "percentile" and 90.0 <= percentile < 100.0):
        raise UsageError("--percentile goes with --calibration-method percentile, between 90 and 100 (e.g. 99.999)")
    method = {"method": calibration_method, "percentile": percentile} if calibration_method else None
    lacking = _lacking_calibration_method(profile, calibration_method)  # before any work, like the rest
    if calibration and not Path(calibration).exists():
        raise UsageError(f"--calibration {calibration}: no such file or folder")
    if fallback_model:
        preflight(fallback_model)
    out_dir = Path(out) if out else default_out(spec, target)
    check_out_dir(out_dir)  # before any work: never replace a folder that is not a bundle
    candidates, skipped = [], []
    for c in profile.candidates:
        missing = c.missing_toolchains()
        if c.id in lacking:
            skipped.append({"id": c.id, "stage": "options", "error": lacking[c.id],
                            "hint": "another --calibration-method, or leave it out for the quantizer's default"})
        elif missing:
            skipped.append({"id": c.id, "stage": "toolchain", "error": f"not installed: {', '.join(missing)}",
                            "hint": deps.TOOLCHAINS[missing[0]].install})
        else:
            candidates.append(c)
    if not candidates:
        first = skipped[0]
        raise ToolchainMissing(f"target {target!r} cannot be built here: {first['error']}", hint=first["hint"])

    writer = BundleWriter(out_dir)
    for left in writer.leftovers:
        say(f"  note: {left} is left from an earlier compile that did not finish"
            + (" (its logs/ say where it stopped)" if left.name.endswith(".partial") else " (the bundle it was replacing)")
            + "; edgekit removes only what the current run made: delete it when you are done with it")
    try:
        return _compile_into(writer, out_dir, spec, target, profile, weights, candidates, skipped, fallback_model,
                             calibration, layout, op_check, method, distill, inputs, verify_data, example,
                             selftest_samples, qat, qat_when_missed=precision == "auto" and qat is None)
    finally:
        writer.lock.release()  # published, abandoned or failed: OUT is free again (a no-op if released)


def _compile_into(writer: BundleWriter, out_dir: Path, spec: str, target: str, profile, weights, candidates, skipped, fallback_model,
                  calibration, layout, op_check, method, distill, inputs=None,
                  verify_data=None, example=None, selftest_samples=None, qat=None,
                  qat_when_missed: bool = False) -> tuple[Path, Manifest]:
    logs, work = writer.stage / "logs", writer.stage / "work"
    t0 = time.perf_counter()
    need_onnx = any(converters.get(c.converter).needs_onnx for c in candidates)
    say(f"[edgekit] compile {spec} for target '{profile.name}' -> {out_dir}")
    distillation = None
    if distill:
        weights, distillation = _distill_stage(spec, distill, writer, logs)
    say("  prepare: load model, reference outputs, ONNX export ...")
    t_prep = time.perf_counter()
    info = run_step("prepare", "edgekit.steps:prepare",
                    {"spec": spec, "weights": weights, "workdir": str(work), "need_onnx": need_onnx,
                     "calibration": calibration, "converters": [c.converter for c in candidates],
                     "inputs": inputs, "verify_data": verify_data, "example": example}, logs)
    if layout == "nhwc" and not any(len(t["shape"]) == 4 for t in info["inputs"]):
        writer.discard()  # a usage error: nothing worth keeping
        raise UsageError("--layout nhwc makes 4-D (N, C, H, W) inputs channel-last; this model has "
                         + ", ".join(f"{t['name']}{t['shape']}" for t in info["inputs"]),
                         hint="leave --layout out (nchw) for this model")
    say(f"  prepare: done in {time.perf_counter() - t_prep:.1f} s ({info['verify_samples']} held-out samples: "
        f"{info['verify_data']})")

    _say_preflight(profile, info)
    artifacts, failed = _build_all(candidates, info, work, writer, logs, profile, trust_preflight=op_check,
                                   calibration_method=method, qat_steps=qat,
                                   qat_when_missed=qat_when_missed)
    failed = skipped + failed
    if fallback_model:
        extra, extra_failed = _fallback_model(fallback_model, info, candidates, writer, logs, profile)
        artifacts += extra
        failed += extra_failed

    # What the artifacts claim must be what they are (edgekit.claims): false precision labels are
    # rejected; quantized artifacts checked on made-up inputs only rank after the float ones.
    notes, demoted = check_claims(artifacts, info.get("reference_check"), info["verify_data"])
    for line in notes:
        say(f"  {line}")
    # Roles: verified artifacts in the profile's preference order (a fallback model last); failed
    # ones are kept for inspection but marked rejected so nothing loads them; artifacts for another
    # machine (not run here) wait as "on-device" until `edgekit build` verifies them there.
    verified = assign_roles(artifacts, {a.id: (a.id in demoted, i) for i, a in enumerate(artifacts)})

    if not artifacts:
        writer.abandon()
        reasons: dict[str, list[str]] = {}  # one line per distinct reason, not one per candidate
        for f in failed:
            reasons.setdefault(f["error"], []).append(f["id"])
        raise ConversionError(f"no artifact could be built for target {target!r}: "
                              + "; ".join(f"{', '.join(ids)}: {err}" for err, ids in reasons.items()),
                              hint=next((f["hint"] for f in failed if f.get("hint") and "log" not in f["hint"]),
                                        None) or f"logs are in {logs}")

    on_device = [a.id for a in artifacts if a.role == "on-device"]
    selftest = _write_selftest(writer, work, n=selftest_samples)
    for f in failed:  # logs move with the bundle: name them where they will be after publishing
        for k in ("error", "hint"):
            if isinstance(f.get(k), str):
                f[k] = f[k].replace(str(writer.stage), str(writer.out))
    manifest = Manifest(
        model={k: info[k] for k in ("name", "source", "kind", "sha256", "task", "labels", "preprocessing", "inputs",
                                    "outputs", "reference", "verify_data", "verify_samples", "source_accuracy",
                                    "export", "calibration", "preflight", "cost")}
        | ({"distillation": distillation} if distillation else {})
        # the user's state dict (debug reloads the model with it; a distilled one is the bundle's distill/student.pt)
        | ({"weights": info["weights"]} if info.get("weights") and not distillation else {})
        | ({"input_specs": info["input_specs"]} if info.get("input_specs") else {})
        | ({"reference_check": info["reference_check"]} if info.get("reference_check") else {})
        | ({"state": info["state"], "sequence_steps": info["sequence_steps"]} if info.get("state") else {})
        | ({"dynamic": info["dynamic"], "verify_shapes": [{k: v for k, v in sp.items() if k != "file"}
                                                          for sp in info["verify_shapes"]]} if info.get("dynamic") else {}),
        target={"name": profile.name, "description": profile.description, "device": profile.device,
                "host_is_target": profile.host_is_target,
                "tolerances": {p: t.to_dict() for p, t in profile.tolerances.items()},
                "latency_budget_ms": profile.latency_budget_ms,
                "min_delegated_flops_share": profile.min_delegated_flops_share,
                "primary_choice": {"rule": "first verified candidate in the profile's preference order",
                                   "measured_on_device": False,
                                   "why": _choice_note(profile),
                                   "preferred": profile.candidates[0].id,
                                   # a preferred artifact waiting for the device is not a degradation
                                   "degraded": degraded(verified, profile.candidates[0].id, on_device + demoted),
                                   "on_device": on_device,
                                   **({"ranked_down_for_random_data": demoted} if demoted else {})}},
        artifacts=artifacts, failed_candidates=failed, selftest=selftest,
        edgekit_version=__version__, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    shutil.rmtree(work, ignore_errors=True)  # the export and reference data are not part of the bundle
    final = writer.publish(manifest)
    say(f"[edgekit] bundle written: {final} ({time.perf_counter() - t0:.1f} s)")
    if not verified:
        raise VerificationFailed(f"no artifact passed verification for target {target!r}: "
                                 + "; ".join(f"{a.id}: {a.verification.reason}" for a in artifacts),
                                 hint=f"the bundle at {final} records every metric; nothing in it will load")
    return final, manifest


def _choice_note(profile) -> str:
    import platform

    host = f"{platform.system()} {platform.machine()}"
    if profile.host_is_target:
        return f"this host ({host}) is the target; compile does not time candidates, so preference order decides"
    return (f"this host ({host}) is not the target device ({profile.device}): host latency says nothing about the "
            f"device, so the profile's preference order decides; parity was verified on the artifacts' real runtimes "
            f"running on this host")


def _write_selftest(writer: BundleWriter, work: Path, name: str = "selftest.npz", n: int | None = None) -> dict:
    """A few held-out inputs with their reference outputs: a device (or app) re-checks the artifact.
    n: how many (default SELFTEST_SAMPLES); more make a device's check as strong as the compile's."""
    inputs, refs, _ = load_samples(work / "verify.npz")
    n = min(n or SELFTEST_SAMPLES, len(inputs))
    pick = sorted({round(i * (len(inputs) - 1) / max(n - 1, 1)) for i in range(n)})  # spread over the set
    path = writer.path(name)
    save_samples(path, [inputs[i] for i in pick], [refs[i] for i in pick])
    return {"path": name, "sha256": sha256_file(path), "size_bytes": path.stat().st_size, "samples": n,
            "reference": "same as model.reference"}
