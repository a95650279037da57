"""`python -m edgekit build BUNDLE`, run on the device: finish what `compile` had to leave to it.

A bundle compiled on another machine carries artifacts with role "on-device": a TensorRT-ready
ONNX whose engine must be built on the device's GPU, and TVM modules for the device's CPU/GPU.
Here each one that this machine can run is (1) built if its step was deferred (TensorRT engine,
in a child process, with a timing cache kept in the bundle), (2) run on its runtime over the
bundle's self-test vectors (in a child process: a native crash is a failed artifact, not a
dead command), then (3) the manifest is rewritten atomically with the results and the roles
re-ranked in the target's preference order. Artifacts this machine cannot run are left as they
were, with the reason printed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .bundle import manifest_json, open_bundle, sha256_file, write_atomically
from .errors import EdgekitError, UsageError
from .isolate import run_step
from .manifest import MANIFEST, Artifact, Manifest, Verification, assign_roles, degraded


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def selftest_artifact(bundle: str, artifact: dict) -> dict:
    """Child-process step: load the artifact on its runtime here and run the self-test vectors."""
    from .manifest import Manifest as _M
    from .runtimes import open_runner
    from .selftest import check_runner

    manifest = _M.read(Path(bundle))
    a = Artifact.from_dict(artifact)
    runner = open_runner(a.runtime, Path(bundle) / a.path, inputs=a.inputs, outputs=a.outputs, layout=a.input_layout)
    metrics, failures = check_runner(runner, bundle, manifest, a)
    return {"metrics": metrics, "failures": failures}


def _build_engine(bundle: Path, a: Artifact, logs: Path, workspace_mb: int | None) -> None:
    deferred = a.converter["deferred"]
    engine = bundle / "artifacts" / deferred["engine"]
    args = {"onnx_path": str(bundle / a.path), "engine_path": str(engine),
            "timing_cache": str(bundle / "artifacts" / "tensorrt.timing-cache")}
    if workspace_mb:
        args["workspace_bytes"] = workspace_mb << 20
    if deferred.get("profile"):  # dynamic dims: the bounds compile recorded
        args["profile"] = deferred["profile"]
    say(f"  {a.id}: building the TensorRT engine on this GPU ...")
    res = run_step(f"device-build-{a.id}", "edgekit.converters.tensorrt:build_engine", args, logs)
    a.converter = {**a.converter, "engine_build": res, "prepared_onnx": a.path,
                   "deferred": {**deferred, "done": True}}
    a.path, a.format = f"artifacts/{deferred['engine']}", "tensorrt-engine"
    a.sha256, a.size_bytes = sha256_file(engine), engine.stat().st_size


def build(bundle_dir: str, workspace_mb: int | None = None) -> tuple[Manifest, list[list[str]]]:
    """Build/verify every on-device artifact this machine can run; (new manifest, result rows)."""
    from . import deps
    from .offhost import device_words, runs_here, step_pending
    from .targets import get_profile

    bundle = Path(bundle_dir)
    manifest = open_bundle(bundle)
    pending = [a for a in manifest.artifacts if a.role == "on-device"]
    if not pending:
        raise UsageError(f"{bundle}: nothing to build; no artifact waits for the device",
                         hint="`python -m edgekit verify BUNDLE` re-checks the verified ones here")
    logs = bundle / "logs"
    rows = []
    where, device = _where_here()
    for a in pending:
        runs_on = a.converter.get("runs_on") or {}
        if not runs_here(runs_on):
            runtime = runs_on.get("runtime")
            why = (f"needs {runtime}: {deps.TOOLCHAINS[runtime].install}" if runtime and not deps.available(runtime)
                   else f"built for {device_words(runs_on)}")
            rows.append([a.id, "skipped", why])
            continue
        try:
            if step_pending(a):
                _build_engine(bundle, a, logs, workspace_mb)
            say(f"  {a.id}: self-test on {a.runtime} ...")
            res = run_step(f"device-verify-{a.id}", "edgekit.device_build:selftest_artifact",
                           {"bundle": str(bundle), "artifact": a.to_dict()}, logs)
        except EdgekitError as e:
            a.verification = Verification(status="failed", where=where, reason=e.message, device=device,
                                          tolerance=a.verification.tolerance, failures=[e.message])
            rows.append([a.id, "failed", e.message])
            continue
        fails = res["failures"]
        a.verification = Verification(status="failed" if fails else "passed", where=where, device=device,
                                      reason="; ".join(fails), samples=manifest.selftest["samples"],
                                      metrics=res["metrics"], tolerance=a.verification.tolerance, failures=fails)
        cos = min((m["cosine"] for m in res["metrics"].values()), default=float("nan"))
        rows.append([a.id, a.verification.status, f"cosine {cos:.6f} on {manifest.selftest['samples']} self-test "
                                                   f"samples" + (f"; {a.verification.reason}" if fails else "")])
    if all(r[1] == "skipped" for r in rows):
        import platform

        raise UsageError(f"nothing in {bundle} can be built or run on this machine ({platform.machine()}): "
                         + "; ".join(f"{r[0]}: {r[2]}" for r in rows),
                         hint=f"run this on the device: {manifest.target['device']}")
    _rerank(manifest, get_profile(manifest.target["name"]), where, device)
    write_atomically(bundle / MANIFEST, manifest_json(manifest))
    return manifest, rows


def _where_here() -> tuple[str, str]:
    """("device", its CPU) on a real device; ("aarch64-emulated", "cortex-a76 (QEMU ...)") on edgekit's
    emulated one: real Arm kernels, an emulated CPU."""
    from .envinfo import cpu_info, emulation

    emu = emulation()
    if emu:
        return emu["kind"], f"{emu['cpu']} ({emu['emulator']})"
    return "device", cpu_info()["model"]


def _rerank(manifest: Manifest, profile, where: str, device: str) -> None:
    """Roles after the device spoke: verified artifacts in the profile's preference order. An emulated
    device's verification counts (the artifact ran on its runtime's Arm kernels), but it is recorded as
    what it was, not as the target device."""
    order = [c.id for c in profile.candidates]
    verified = assign_roles(manifest.artifacts, {a.id: (order.index(a.id) if a.id in order else len(order))
                                                 for a in manifest.artifacts})
    choice = manifest.target["primary_choice"]
    choice["on_device"] = [a.id for a in manifest.artifacts if a.role == "on-device"]
    choice["degraded"] = degraded(verified, choice["preferred"], choice["on_device"])
    choice["built_on_device"] = where == "device"
    choice["built_on"] = f"{where}: {device}"
