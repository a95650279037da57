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
    """`build --device ssh://...`: `edgekit build` runs on the device over a copy of the bundle; its new
    manifest replaces this one (atomically) only if it records results and nothing else: every
    artifact's file the same. A step that makes files (a TensorRT engine) must run on the device itself."""
    from ..bundle import open_bundle, write_atomically
    from ..errors import RemoteDeviceError, UsageError
    from ..manifest import MANIFEST, Manifest
    from ..remote import measured_on, remote_build

    if args.device == "chromium":
        raise UsageError("build --device takes an ssh:// device; chromium runs TF.js artifacts (verify --device "
                         "chromium)")
    bundle = Path(args.bundle)
    before = open_bundle(bundle)
    print(f"[edgekit] build on {args.device} ...", file=sys.stderr, flush=True)
    text, rows, device = remote_build(args.device, bundle, identity=args.identity, device_python=args.device_python,
                                      **({"timeout_s": args.device_timeout} if args.device_timeout else {}),
                                      known_hosts=args.known_hosts)
    import json

    after = Manifest.from_dict(json.loads(text))
    old = {a.id: (a.path, a.sha256, a.size_bytes) for a in before.artifacts}
    new = {a.id: (a.path, a.sha256, a.size_bytes) for a in after.artifacts}
    if old != new:
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        raise RemoteDeviceError(f"the device's build changed artifact files ({', '.join(changed)}), which stay on "
                                "the device; this bundle is unchanged",
                                hint=f"run `python -m edgekit build {bundle.name}` on the device itself and copy the "
                                     "bundle back")
    write_atomically(bundle / MANIFEST, text)
    return after, rows, measured_on(device)
