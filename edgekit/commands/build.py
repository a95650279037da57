"""`edgekit build`: on the device: build deferred steps (TensorRT engine) and verify the bundle's on-device
artifacts here, then re-rank the bundle's roles."""
from __future__ import annotations

import sys
from pathlib import Path

from ..table import render
from .common import add_device_opts, positive_int, summary


def add_parser(sub) -> None:
    bd = sub.add_parser("build", help="on the device: build deferred steps (TensorRT engine) and verify the bundle's "
                        "on-device artifacts here, then re-rank the bundle's roles")
    bd.add_argument("bundle")
    bd.add_argument("--workspace-mb", type=positive_int, help="TensorRT builder workspace limit (default 1024)")
    add_device_opts(bd)


def run(args) -> int:
    """Exit 0 when every artifact this device can run passed, 12 when some failed."""
    from ..device_build import build
    from ..errors import EXIT_DEGRADED

    if args.device:
        manifest, rows, where = _build_on_device(args)
    else:
        manifest, rows = build(args.bundle, args.workspace_mb)
        where = "this device"
    print(render(["artifact", "result", "detail"], rows, f"build {args.bundle} on {where}"))
    print(summary(args.bundle, manifest, {}))
    return EXIT_DEGRADED if any(r[1] == "failed" for r in rows) else 0


def _build_on_device(args):
    """`build --device ssh://...`: `edgekit build` runs on the device over a copy of the bundle. From its
    reply only the results are taken, and only for the artifacts that waited for a device: status,
    metrics, failures, where and what ran them. Everything else (tolerances, files, hashes, roles'
    ranking) stays this host's, so a device can report a result, never rewrite the bundle. A step that
    makes files (a TensorRT engine) must run on the device itself."""
    import json

    from ..bundle import manifest_json, open_bundle, write_atomically
    from ..device_build import _rerank
    from ..errors import RemoteDeviceError, UsageError
    from ..manifest import MANIFEST, Manifest, Verification
    from ..remote import measured_on, remote_build
    from ..targets import get_profile

    if args.device == "chromium":
        raise UsageError("build --device takes an ssh:// device; chromium runs TF.js artifacts (verify --device "
                         "chromium)")
    bundle = Path(args.bundle)
    waiting = [a.id for a in open_bundle(bundle).artifacts if a.role == "on-device"]
    if not waiting:
        raise UsageError(f"{bundle}: nothing to build; no artifact waits for the device",
                         hint="`python -m edgekit verify BUNDLE --device ...` re-checks the verified ones there")
    print(f"[edgekit] build on {args.device} ...", file=sys.stderr, flush=True)
    text, rows, device = remote_build(args.device, bundle, identity=args.identity, device_python=args.device_python,
                                      timeout_s=args.device_timeout,
                                      known_hosts=args.known_hosts)
    try:
        reply = {a.id: a for a in Manifest.from_dict(json.loads(text)).artifacts}
    except Exception as e:  # noqa: BLE001 - a malformed reply is the device's fault: reported, nothing written
        raise RemoteDeviceError(f"the device's build reply is not a manifest edgekit can read: {type(e).__name__}: "
                                f"{str(e)[:200]}; this bundle is unchanged") from None
    manifest = open_bundle(bundle)  # again, now: what is on disk at the moment of writing
    where, where_kind, ran_on, moved = measured_on(device), "", "", []
    for a in manifest.artifacts:
        new = reply.get(a.id)
        if a.role != "on-device" or new is None:
            continue
        if (new.path, new.sha256, new.size_bytes) != (a.path, a.sha256, a.size_bytes):
            moved.append(a.id)  # a file made there (a TensorRT engine) stays there: its result is not this file's
            continue
        v = new.verification
        if v.status not in ("passed", "failed") or v.where not in ("device", "aarch64-emulated"):
            continue  # skipped there (no runtime, another machine): still waiting
        a.verification = Verification(status=v.status, where=v.where, device=str(v.device)[:200],
                                      reason=str(v.reason)[:2000], samples=int(v.samples), metrics=v.metrics,
                                      failures=[str(f)[:500] for f in v.failures], tolerance=a.verification.tolerance)
        where_kind, ran_on = v.where, str(v.device)[:200]
    if ran_on:
        _rerank(manifest, get_profile(manifest.target["name"]), where_kind, ran_on)
        write_atomically(bundle / MANIFEST, manifest_json(manifest))
    if moved:
        print(f"[edgekit] note: the device built new files for {', '.join(moved)}; they stay on the device and "
              f"their results were not taken: run `python -m edgekit build {bundle.name}` on the device itself",
              file=sys.stderr)
    return manifest, rows, where
