"""Which install set `./ek ARGS` needs, printed for the ek script: read from the target profiles
themselves (targets/*.py, their `setup=`), with the system python3 and the standard library only,
because it runs before the virtualenv exists. Two different sets at once need dev (all of them).

    python3 scripts/setup_for.py compile --target jetson   ->  tvm
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

TARGETS = Path(__file__).resolve().parents[1] / "targets"
# Commands and devices that are not targets but need a set: package embeds mobile runtimes,
# build runs deferred steps (TVM, TensorRT), a chromium device runs TF.js in a browser, the
# `device` command starts an emulated arm64 device (QEMU, debootstrap).
OTHERS = {"package": "mobile", "build": "tvm", "chromium": "web", "device": "arm64"}


def target_sets(precision: bool = False) -> dict[str, str]:
    """target name -> install set, from each profile's TargetProfile(name=..., setup=...) call;
    precision: `--precision` was given, which builds on-request candidates (precision_setup=...)."""
    out = {}
    for f in sorted(TARGETS.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "TargetProfile":
                kw = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
                if "name" in kw:
                    out[kw["name"]] = (precision and kw.get("precision_setup")) or kw.get("setup", "cpu")
    return out


def bundle_manifest(arg: str) -> dict | None:
    """A bundle folder named on the command line (bench, verify, debug, report ...): its manifest, so
    the runtimes its artifacts need get installed."""
    import json

    manifest = Path(arg) / "manifest.json"
    try:
        m = json.loads(manifest.read_text()) if manifest.is_file() else None
        return m if m and m["target"]["name"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not a bundle edgekit can read: edgekit itself will say why


# Runtimes a target may build on request only (cpu's ExecuTorch and LiteRT): a bundle holding one
# needs its target's precision_setup set.
ON_REQUEST_RUNTIMES = ("executorch", "litert")


def needed(args: list[str]) -> str:
    if args[:1] == ["device"]:  # `device start arm64 --target rpi` names a target for its CPU only
        return OTHERS["device"]
    bundles = [m for a in args if (m := bundle_manifest(a))]
    precision = any(a == "--precision" or a.startswith("--precision=") for a in args) or any(
        isinstance(art, dict) and art.get("runtime") in ON_REQUEST_RUNTIMES for m in bundles for art in m.get("artifacts", []))
    sets = {**target_sets(precision), **OTHERS}
    names = [a.split("=", 1)[-1] for a in args] + [m["target"]["name"] for m in bundles]
    found = {sets[n] for n in names if n in sets} - {"cpu"}
    return found.pop() if len(found) == 1 else "dev" if found else "cpu"


if __name__ == "__main__":
    print(needed(sys.argv[1:]))
