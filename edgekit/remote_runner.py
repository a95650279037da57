"""Device side of edgekit.remote: runs ON the device, with the device's Python, from a fresh copy.

    python -m edgekit.remote_runner ARGS      # ARGS: base64 of {"op": "bench"|"verify"|"build", "bundle": DIR, ...}

Prints exactly one line `EDGEKIT-RESULT <json>` on stdout: {"ok": result, "device": {...}} or
{"error": {"type", "message", "hint", "package"}, "stage": ...}. Only the standard library is
imported before the bundle's sha256 check, so a device without numpy gets a clear error, and a
corrupted bundle is refused before any runtime is imported ("runtime_modules" proves it).
"""
from __future__ import annotations

import base64
import glob
import json
import os
import platform
import sys
import traceback

from edgekit.errors import EdgekitError, ToolchainMissing, UsageError  # stdlib only

RESULT_MARK = "EDGEKIT-RESULT "


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def snapshot() -> dict:
    """What can make a timing untrustworthy, read now: temperatures, load, clocks, throttle counters."""
    temps = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        t = _read(zone + "/temp")
        if t and t.lstrip("-").isdigit():
            temps[f"{os.path.basename(zone)}:{_read(zone + '/type') or '?'}"] = int(t) / 1000.0
    throttles = [_read(p) for p in glob.glob("/sys/devices/system/cpu/cpu*/thermal_throttle/core_throttle_count")]
    freqs = [_read(p) for p in glob.glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq")]
    freqs = [int(f) / 1000.0 for f in freqs if f and f.isdigit()]
    return {"temps_c": temps, "loadavg": list(os.getloadavg()),
            "throttle_count": sum(int(t) for t in throttles if t and t.isdigit()) if throttles else None,
            "cur_freq_mhz": round(sum(freqs) / len(freqs), 1) if freqs else None}


def device_info() -> dict:
    from edgekit.envinfo import cpu_info, emulation  # stdlib only

    cpu = cpu_info()
    govs = sorted({g for g in (_read(p) for p in glob.glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"))
                   if g})
    return {"cpu_model": cpu["model"], "arch": cpu["arch"], "logical_cpus": cpu["logical_cpus"],
            "governor": cpu["governor"], "governors": govs, "cpu_flags": cpu["flags"], "emulated": emulation(), "hostname": platform.node(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "python_executable": sys.executable, "edgekit_path": os.path.dirname(os.path.abspath(__file__))}


def _missing(name: str) -> ToolchainMissing | None:
    """A ToolchainMissing (carrying the PyPI name) if toolchain `name` cannot be imported here."""
    from edgekit import deps

    if deps.available(name):
        return None
    tc = deps.TOOLCHAINS[name]
    e = ToolchainMissing(f"{name} is not installed for {sys.executable}", hint=tc.install)
    e.package = tc.dist
    return e


def _runtime_missing(runtime: str) -> ToolchainMissing | None:
    e = _missing("numpy")  # first: edgekit.runtimes itself imports numpy
    if e:
        return e
    from edgekit.runtimes import toolchain_of

    return _missing(toolchain_of(runtime))


def _run(args: dict, stage: list) -> object:
    from edgekit.bundle import open_bundle

    stage[0] = "integrity"
    manifest = open_bundle(args["bundle"])  # every file's size and sha256 against the manifest
    if args["op"] == "build":  # `edgekit build` here, on this copy; the new manifest goes back to the host
        stage[0] = "run"
        from edgekit.bundle import manifest_json
        from edgekit.device_build import build

        built, rows = build(args["bundle"])
        return {"manifest": manifest_json(built), "rows": rows}
    usable = manifest.usable()
    stage[0] = "toolchains"
    if args["op"] == "bench":
        aid = args.get("artifact_id") or (usable[0].id if usable else None)
        art = next((a for a in usable if a.id == aid), None)
        if art is None:
            raise UsageError(f"no usable artifact {aid!r} in the bundle")
        if e := _runtime_missing(art.runtime):
            raise e
        stage[0] = "run"
        from edgekit.bench import measure

        return measure(args["bundle"], art.id, args.get("threads"), args["warmup_s"], args["min_runs"],
                       args["min_time_s"])
    if usable and (e := _runtime_missing(usable[0].runtime)):  # the primary must be checkable
        raise e
    stage[0] = "run"
    from edgekit.offhost import runs_here, step_pending
    from edgekit.selftest import check_artifact

    # artifacts waiting for this kind of machine (a TVM aarch64 module) are run too: verify reads, never writes
    waiting = [a for a in manifest.artifacts if a.role == "on-device" and runs_here(a.converter.get("runs_on") or {})
               and not step_pending(a)]
    # rejected ones only when asked (verify --device does): how far the Arm kernels are from the host's
    # matters most for what failed there; they never count toward the device's verdict
    # (only those that ran on the host: one that crashed or would not load there stays unloaded here too)
    rejected = [a for a in manifest.artifacts if a.role == "rejected" and a.verification.metrics
                and runs_here(a.converter.get("runs_on") or {})] if args.get("rejected") else []
    out = []
    for a in usable + waiting + rejected:
        row = {"artifact": a.id, "runtime": a.runtime, "precision": a.precision, "role": a.role}
        if e := _runtime_missing(a.runtime):  # a fallback's runtime may be absent: say so, check the rest
            out.append({**row, "status": "skipped", "metrics": {}, "failures": [],
                        "skipped": f"{e.message} ({e.hint})"})
            continue
        kept: list = []
        try:
            metrics, fails = check_artifact(args["bundle"], manifest, a, keep=kept)
        except Exception as e:  # noqa: BLE001 - one artifact that cannot load must not hide the others' results
            metrics, fails = {}, [f"could not run: {e.message if isinstance(e, EdgekitError) else f'{type(e).__name__}: {e}'[:300]}"]
        if args.get("outputs") and kept:  # for the host's Arm-vs-x86 comparison (edgekit.parity)
            from edgekit.parity import encode

            row["outputs"] = encode(kept)
        out.append({**row, "status": "failed" if fails else "passed", "metrics": metrics, "failures": fails})
    return out


def _jsonable(o):
    return o.item() if hasattr(o, "item") else str(o)


def main(argv: list[str]) -> int:
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # a runtime's prints must not corrupt the JSON line
    stage, out = ["start"], {}
    try:
        args = json.loads(base64.b64decode(argv[0]))
        device = device_info()
        device.update({f"{k}_before": v for k, v in snapshot().items()})
        out = {"ok": _run(args, stage)}
        device.update({f"{k}_after": v for k, v in snapshot().items()})
        out["device"] = device
    except Exception as e:  # noqa: BLE001 - everything goes back as JSON; the traceback stays in stderr
        if isinstance(e, EdgekitError):
            out = {"error": {"type": type(e).__name__, "message": e.message, "hint": e.hint,
                             "package": getattr(e, "package", None)}}
        else:
            traceback.print_exc()
            out = {"crash": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:400]}"}
    out["stage"] = stage[0]
    tops = {"onnxruntime", "tflite_runtime", "ai_edge_litert", "tensorrt", "tvm", "coremltools", "torch"}
    out["runtime_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in tops and "." not in m)
    real_stdout.write(RESULT_MARK + json.dumps(out, default=_jsonable) + "\n")
    real_stdout.flush()
    return 0 if "ok" in out else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
