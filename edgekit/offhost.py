"""Artifacts for another machine (an aarch64 board, an NVIDIA GPU, macOS): whether this host can run
one, and the record of what was checked here instead of running it."""
from __future__ import annotations

from pathlib import Path


def runs_here(runs_on: dict) -> bool:
    """Can this machine run an artifact made for `runs_on` ({"arch": "aarch64" | None, "gpu": ...,
    "os": "Darwin" | None, "runtime": ...})? A GPU artifact needs the device; another CPU
    architecture or operating system (Core ML predicts on Apple's only) needs the device."""
    import platform

    from . import deps

    if runs_on.get("os") and runs_on["os"] != platform.system():
        return False
    if runs_on.get("arch") and runs_on["arch"] != platform.machine():
        return False
    if runs_on.get("runtime") and not deps.available(runs_on["runtime"]):
        return False
    return has_nvidia_gpu() if runs_on.get("gpu") else True


def step_pending(artifact) -> bool:
    """The artifact's file is not the one that runs yet: a deferred step (a TensorRT engine build)
    must run on the device first (edgekit build)."""
    deferred = artifact.converter.get("deferred")
    return bool(deferred) and not deferred.get("done")


def device_words(runs_on: dict) -> str:
    """"macOS", "aarch64 + cuda sm_87": the machine an artifact needs, as a user calls it."""
    os_name = {"Darwin": "macOS"}.get(runs_on.get("os"), runs_on.get("os"))
    return " + ".join(filter(None, [os_name, runs_on.get("arch"), runs_on.get("gpu")]))


def has_nvidia_gpu() -> bool:
    """An NVIDIA GPU's driver is present: nvidia-smi (desktop/server drivers, JetPack 6) or a
    Jetson's integrated-GPU device node (older JetPack has no nvidia-smi)."""
    import shutil

    return shutil.which("nvidia-smi") is not None or any(
        Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0"))


def not_run_here(cand, conv_info: dict, info: dict, tolerance: dict) -> dict:
    """An artifact for another machine: what was checked here (file format, entry points, the
    prepared graph's numerics) decides passed-or-failed of those checks; the artifact's own
    numerics are 'not-run' until the device runs `edgekit build` (or `verify`) on it."""
    from .verify import judge
    from .profiles import Tolerance

    runs_on = conv_info["runs_on"]
    device = device_words(runs_on)
    failures = list((conv_info.get("artifact_checks") or {}).get("failures", []))
    host = conv_info.get("host_check")
    if host:  # the graph the device will build, run here on another runtime
        failures += [f"prepared graph on {host['runtime']}: {f}" for f in judge(host["metrics"], Tolerance(**tolerance))]
        failures += [f"prepared graph on {host['runtime']} at {sp['label']}: {f}"
                     for sp in host.get("shapes") or [] for f in judge(sp["metrics"], Tolerance(**tolerance))]
    deferred = conv_info.get("deferred")
    reason = (f"runs on the device ({device}), not on this host"
              + (f"; its {deferred['step']} is built there: {deferred['command'].format(bundle='BUNDLE')}" if deferred
                 else "; verify it there: python -m edgekit build BUNDLE"))
    return {
        "converter": conv_info, "inputs": info["inputs"], "outputs": info["outputs"],
        "verification": {"status": "failed" if failures else "not-run", "where": "device",
                         "reason": "; ".join(failures) if failures else reason, "samples": 0,
                         "metrics": host["metrics"] if host else {}, "tolerance": dict(tolerance),
                         "failures": failures, "accuracy": None},
    }
