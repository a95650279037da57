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

    ok = [a for a in manifest.artifacts if a.runtime in READERS and a.role != "on-device"]
    return ok, [a for a in manifest.artifacts if a not in ok]


def trace_bundle(bundle: Path, artifacts: list, input_path: str | None = None) -> list[dict]:
    from ..isolate import run_step

    logs = Path(tempfile.mkdtemp(prefix="edgekit-debug-"))
    results = []
    for a in artifacts:
        print(f"[edgekit] debug {a.id}: source model and artifact, layer by layer ...", file=sys.stderr, flush=True)
        results.append(run_step(f"debug-{a.id}", "edgekit.debug.trace:trace",
                                {"bundle_dir": str(bundle), "artifact_id": a.id, "input_path": input_path}, logs,
                                timeout=TIMEOUT_S))
    return results
