"""Trace a bundle's artifacts, each in a child process (the source model and the artifact's runtime
load there): what `edgekit debug` and `edgekit report --layers` run."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

TIMEOUT_S = 1800.0  # per artifact: the source, its export and the artifact's runtime, in one child process


def traceable(manifest) -> tuple[list, list]:
    """(artifacts debug reads here, the others): a runtime with a layer reader, run on this machine."""
    from . import READERS

    # a fallback model's artifacts (a.model set) come from another source model: not traced
    ok = [a for a in manifest.artifacts if a.runtime in READERS and a.role != "on-device" and not a.model]
    return ok, [a for a in manifest.artifacts if a not in ok]


def trace_bundle(bundle: Path, artifacts: list, input_path: str | None = None) -> list[dict]:
    """One result per artifact; an artifact whose trace fails is a result with `error` (the others still
    run), except a problem with the source model or the input, which is every artifact's: raised."""
    import shutil

    from ..errors import EdgekitError, InputError, ModelSourceError, UsageError
    from ..isolate import run_step

    logs = Path(tempfile.mkdtemp(prefix="edgekit-debug-"))
    results = []
    for a in artifacts:
        print(f"[edgekit] debug {a.id}: source model and artifact, layer by layer ...", file=sys.stderr, flush=True)
        try:
            results.append(run_step(f"debug-{a.id}", "edgekit.debug.trace:trace",
                                    {"bundle_dir": str(bundle), "artifact_id": a.id, "input_path": input_path}, logs,
                                    timeout=TIMEOUT_S))
        except (ModelSourceError, InputError, UsageError):
            raise
        except EdgekitError as e:
            results.append({"artifact": a.id, "runtime": a.runtime, "precision": a.precision, "error": e.message,
                            "line": f"first divergence: unknown: the trace failed: {e.message}"})
            continue
    if all("error" not in r for r in results):
        shutil.rmtree(logs, ignore_errors=True)  # kept when a trace failed: its error names a log there
    return results
