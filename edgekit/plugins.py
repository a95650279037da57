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


EXPORTS = ("CONVERTER", "CONVERTERS", "RUNNER", "RUNNERS", "PROFILE", "PROFILES")


def modules() -> list:
    """The plug-in modules named in EDGEKIT_PLUGINS, imported (Python caches them). A module that does
    not import, or exports none of EXPORTS, is a usage error naming it."""
    from .errors import UsageError

    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    out = []
    for name in names:
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            hint = (f"put its folder on PYTHONPATH, or fix {ENV}={os.environ.get(ENV)!r}" if e.name == name
                    else f"the plug-in itself needs {e.name!r}: install it")
            raise UsageError(f"{ENV}: cannot import plug-in module {name!r}: {e}", hint=hint) from e
        except Exception as e:  # a plug-in's own bug at import: its name and the error, not a traceback
            raise UsageError(f"{ENV}: plug-in module {name!r} failed on import: {type(e).__name__}: {e}") from e
        if not any(hasattr(mod, x) for x in EXPORTS):
            raise UsageError(f"{ENV}: plug-in module {name!r} exports none of {', '.join(EXPORTS)}")
        out.append(mod)
    return out


def exported(single: str, several: str) -> list:
    """Every record the plug-ins export as `single` (one) or `several` (a list or tuple)."""
    from .errors import UsageError

    found = []
    for m in modules():
        if hasattr(m, single):
            found.append(getattr(m, single))
        many = getattr(m, several, ())
        if not isinstance(many, (list, tuple)):
            raise UsageError(f"{ENV}: {m.__name__}.{several} must be a list (one record: name it {single})")
        found.extend(many)
    return found


def merged(builtin: dict, plugged: list, key, what: str) -> dict:
    """name -> record, the built-ins then the plug-ins; a plug-in may not take a built-in's name (it
    would silently replace what every target and test relies on) nor use one twice."""
    from .errors import UsageError

    out = dict(builtin)
    for rec in plugged:
        name = key(rec)
        if not name:
            raise UsageError(f"{ENV}: a plug-in {what} has no name: {rec!r}")
        if name in out:
            raise UsageError(f"{ENV}: plug-in {what} {name!r} clashes with one that already has that name",
                             hint=f"give the plug-in's {what} a name of its own")
        out[name] = rec
    return out
