"""Target profiles, one file per profile, listed here (the list is the registry).

Each module defines PROFILE: edgekit.profiles.TargetProfile. Add a target: a new file + one line
(a target from outside the repository: the same file, named in EDGEKIT_PLUGINS; edgekit.plugins).
"""
from __future__ import annotations

import importlib

from ..errors import UsageError, did_you_mean
from ..profiles import TargetProfile

TARGET_MODULES = ["cpu", "android", "rpi", "jetson", "cpu_tvm", "ios", "browser"]


def all_profiles() -> list[TargetProfile]:
    from ..plugins import exported, merged

    builtin = {p.name: p for p in (importlib.import_module(f"{__name__}.{m}").PROFILE for m in TARGET_MODULES)}
    return list(merged(builtin, exported("PROFILE", "PROFILES"), lambda p: p.name, "target").values())


def get_profile(name: str) -> TargetProfile:
    for p in all_profiles():
        if p.name == name:
            return p
    names = [p.name for p in all_profiles()]
    raise UsageError(f"unknown target {name!r}{did_you_mean(name, names)}; targets: {', '.join(names)}",
                     hint="python -m edgekit targets")
