"""Plug-ins from outside the repository: EDGEKIT_PLUGINS names Python modules (comma-separated,
importable on sys.path) that add converters, runtimes or targets, exactly as the built-in ones do:

    CONVERTER = Converter(...)      # or CONVERTERS = [...]  (edgekit.converters.Converter)
    RUNNER = MyRunner                # or RUNNERS = [...]     (an edgekit.runtimes.base.Runner subclass)
    PROFILE = TargetProfile(...)     # or PROFILES = [...]    (edgekit.profiles.TargetProfile)

The variable is read from the environment, so pipeline steps in child processes see the same
plug-ins as the command that started them. This module imports nothing of edgekit's, so every
registry can use it without an import cycle.
"""
from __future__ import annotations

import importlib
import os

ENV = "EDGEKIT_PLUGINS"


def modules() -> list:
    """The plug-in modules named in EDGEKIT_PLUGINS, imported (Python caches them)."""
    from .errors import UsageError

    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    out = []
    for name in names:
        try:
            out.append(importlib.import_module(name))
        except ImportError as e:
            raise UsageError(f"{ENV}: cannot import plug-in module {name!r}: {e}",
                             hint=f"put its folder on PYTHONPATH, or fix {ENV}={os.environ.get(ENV)!r}") from e
    return out


def exported(single: str, several: str) -> list:
    """Every record the plug-ins export as `single` (one) or `several` (a list)."""
    found = []
    for m in modules():
        if hasattr(m, single):
            found.append(getattr(m, single))
        found.extend(getattr(m, several, ()))
    return found
