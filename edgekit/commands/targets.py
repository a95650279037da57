"""`edgekit targets`: list target profiles and whether their toolchains are installed."""
from __future__ import annotations

import sys

from ..table import render


def add_parser(sub) -> None:
    sub.add_parser("targets", help="list target profiles and whether their toolchains are installed")


def run(args) -> int:
    from .. import deps
    from ..targets import all_profiles

    rows = []
    for p in all_profiles():
        for i, c in enumerate(p.candidates):
            missing = c.missing_toolchains()
            on_device = [t for t in c.toolchains() if deps.TOOLCHAINS[t].where == "device"
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
