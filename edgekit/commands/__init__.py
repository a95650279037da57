"""The commands of `python -m edgekit`, one module each, listed in COMMAND_MODULES (the order of `--help`).

A command module has `add_parser(sub)`, which registers its arguments on the subparsers, and
`run(args) -> int`, which does the work and returns the exit code. Options several commands share
live in common.py. User errors are raised as EdgekitError; edgekit.cli maps them to exit codes.
"""
from __future__ import annotations

import importlib

COMMAND_MODULES = ["compile", "check", "report", "bench", "gate", "verify", "debug", "history", "sweep", "explain", "distill",
                   "build", "device", "package", "keygen", "sign", "targets", "doctor"]


def command_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")
