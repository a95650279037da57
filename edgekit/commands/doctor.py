"""`edgekit doctor`: toolchains: installed version or the install command."""
from __future__ import annotations

from .. import __version__
from ..table import render


def add_parser(sub) -> None:
    sub.add_parser("doctor", help="toolchains: installed version or the install command")


def run(args) -> int:
    from .. import deps

    rows = [[t.name, deps.version(t.name) or ("MISSING" if t.where == "host" else "not here (device only)"),
             t.purpose, "" if deps.available(t.name) else t.install] for t in deps.TOOLCHAINS.values()]
    print(render(["toolchain", "version", "used for", "install with"], rows, f"edgekit {__version__}"))
    return 0
