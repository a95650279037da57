"""One artifact on two machines' kernels: a device's (an Arm board, the emulated aarch64 device)
against this host's, over the same self-test vectors.

The self-test says whether each machine is within the artifact's tolerance of the source model;
this says how far the two machines are from each other: bit-exact, a few INT8 steps apart, or
a different answer (a kernel bug on one of them). The device sends its raw outputs back (an .npz,
base64, only when small enough to travel); the host runs the same artifact on its own runtime.
"""
from __future__ import annotations

import base64
import io

import numpy as np

MAX_BYTES = 16 << 20  # outputs larger than this stay on the device (the self-test metrics still come back)


def encode(outputs: list[dict]) -> str | None:
    """Device side: the outputs of every self-test vector as one base64 .npz; None when too big."""
    arrays = {f"{i}/{name}": np.asarray(v) for i, out in enumerate(outputs) for name, v in out.items()}
    if sum(a.nbytes for a in arrays.values()) > MAX_BYTES:
        return None
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return base64.b64encode(buf.getvalue()).decode()


def decode(blob: str) -> list[dict]:
    """Host side: the device's outputs, [{name: array}] per vector. Never unpickles anything, and
    refuses more than MAX_BYTES unpacked (a device's reply is not trusted to be small)."""
    with np.load(io.BytesIO(base64.b64decode(blob, validate=True)), allow_pickle=False) as z:
        if sum(i.file_size for i in z.zip.infolist()) > MAX_BYTES + (1 << 20):
            raise ValueError(f"more than {MAX_BYTES >> 20} MB of outputs")
        out: dict[int, dict] = {}
        for key in z.files:
            i, _, name = key.partition("/")
            out.setdefault(int(i), {})[name] = z[key]
    return [out[i] for i in sorted(out)]


def compare(device: list[dict], host: list[dict], classifier: bool) -> dict:
    """How far the device's outputs are from the host's: max abs difference, how many values differ
    at all, the worst per-vector cosine, and for a classifier how many top-1 answers agree."""
    diffs, differing, total, cosines, agree = [], 0, 0, [], 0
    if len(device) != len(host):
        return {"error": f"the device sent {len(device)} output sets for {len(host)} self-test vectors"}
    for d, h in zip(device, host):
        if set(d) != set(h):
            return {"error": f"the device's outputs {sorted(d)} are not the artifact's {sorted(h)}"}
        for name in h:
            a, b = np.asarray(d[name], np.float64).ravel(), np.asarray(h[name], np.float64).ravel()
            if a.shape != b.shape:
                return {"error": f"output {name!r}: device shape {np.shape(d[name])} != host {np.shape(h[name])}"}
            diffs.append(float(np.max(np.abs(a - b))) if a.size else 0.0)
            differing += int(np.count_nonzero(a != b))
            total += a.size
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            cosines.append(float(a @ b / (na * nb)) if na and nb else float(na == nb))
        if classifier:
            first = next(iter(h))
            agree += int(np.argmax(d[first]) == np.argmax(h[first]))
    out = {"vectors": len(host), "max_abs_diff": max(diffs, default=0.0), "differing_values": differing,
           "values": total, "worst_cosine": min(cosines, default=1.0)}
    if classifier:
        out["top1_agree"] = agree
    return out


def versus_host(bundle_dir, manifest, artifact, device_blob: str | None) -> dict | None:
    """The device's outputs against this host's run of the same artifact; None when the device sent
    none, {"skipped": why} when this host cannot run the artifact's runtime."""
    from . import deps
    from .offhost import device_words, runs_here
    from .runtimes import toolchain_of
    from .selftest import check_artifact

    if not device_blob:
        return None
    runs_on = artifact.converter.get("runs_on") or {}
    if not runs_here(runs_on):
        return {"skipped": f"built for {device_words(runs_on)}: no run on this host to compare with"}
    tool = toolchain_of(artifact.runtime)
    if not deps.available(tool):
        return {"skipped": f"{tool} is not installed on this host"}
    host: list = []
    try:
        check_artifact(bundle_dir, manifest, artifact, keep=host)
    except Exception as e:  # noqa: BLE001 - the host's own trouble must not hide the device's results
        return {"skipped": f"the host could not run it: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"}
    if not host:
        return {"skipped": "the host's run produced no outputs"}
    try:
        device = decode(device_blob)
    except Exception as e:  # noqa: BLE001 - a malformed reply is the device's problem, reported, not a crash
        return {"error": f"the device's outputs could not be read: {type(e).__name__}: {str(e)[:120]}"}
    return compare(device, host, manifest.model.get("task") == "classification")
