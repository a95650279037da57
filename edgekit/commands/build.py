"""`edgekit build`: on the device: build deferred steps (TensorRT engine) and verify the bundle's on-device
artifacts here, then re-rank the bundle's roles."""
from __future__ import annotations

from ..table import render
from .common import positive_int, summary


def add_parser(sub) -> None:
    bd = sub.add_parser("build", help="on the device: build deferred steps (TensorRT engine) and verify the bundle's "
                        "on-device artifacts here, then re-rank the bundle's roles")
    bd.add_argument("bundle")
    bd.add_argument("--workspace-mb", type=positive_int, help="TensorRT builder workspace limit (default 1024)")


def run(args) -> int:
    """Exit 0 when every artifact this device can run passed, 12 when some failed."""
    from ..device_build import build
    from ..errors import EXIT_DEGRADED

    manifest, rows = build(args.bundle, args.workspace_mb)
    print(render(["artifact", "on this device", "detail"], rows, f"build {args.bundle}"))
    print(summary(args.bundle, manifest, {}))
    return EXIT_DEGRADED if any(r[1] == "failed" for r in rows) else 0
