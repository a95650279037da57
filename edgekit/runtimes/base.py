"""The one interface every runtime implements (after Polygraphy's runners)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import TensorSpec


def output_list(y) -> list:
    """A model's return value as a list of outputs: a tensor, a tuple/list of them, or a dict."""
    return list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (tuple, list)) else [y]


def profile_summary(events: list[tuple[str, str, float]], runs: int, source: str) -> dict:
    """(op type, node, microseconds) events over `runs` runs -> per-op-type time per run, busiest
    first, with how many instances of that op one run executes."""
    per_op: dict[str, list] = {}
    per_node: dict[str, float] = {}
    for op, node, us in events:
        row = per_op.setdefault(op, [0.0, 0])
        row[0] += us
        row[1] += 1
        per_node[node] = per_node.get(node, 0.0) + us
    total_ms = sum(r[0] for r in per_op.values()) / 1e3 / max(runs, 1)
    ops = [{"op": op, "ms_per_run": t / 1e3 / runs, "count": round(n / runs),
            "share": (t / 1e3 / runs) / total_ms if total_ms else 0.0}
           for op, (t, n) in sorted(per_op.items(), key=lambda kv: -kv[1][0])]
    nodes = [{"node": k, "ms_per_run": v / 1e3 / runs} for k, v in sorted(per_node.items(), key=lambda kv: -kv[1])[:10]]
    return {"source": source, "runs": runs, "ops_ms_per_run": total_ms, "ops": ops, "top_nodes": nodes}


class Closing:
    """`with` support for anything with close(): runners and the wrappers around them."""

    def close(self) -> None:
        """Release what the runtime holds (a Node process, a browser, GPU buffers); idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Runner(Closing):
    """Load one artifact file; run it on a dict of numpy arrays; return a dict of numpy arrays."""

    runtime = ""  # key in RUNTIMES
    toolchain = ""  # key in edgekit.deps.TOOLCHAINS

    def __init__(self, path: Path, threads: int | None = None):
        self.path = Path(path)
        self.threads = threads

    @property
    def inputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    @property
    def outputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def bind(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> "Runner":
        """Formats that do not store tensor names (e.g. .ptl) take them from the manifest."""
        return self

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def profile(self, feeds: dict[str, np.ndarray], runs: int, warmup: int = 5) -> dict | None:
        """Per-operator time from the runtime's own profiler over `runs` runs after `warmup`
        (see profile_summary), or None where this runtime offers none here."""
        return None

    def timed_runs(self, feeds: dict[str, np.ndarray], runs: int, min_time_s: float) -> list[float] | None:
        """Per-run latency (ms) timed by the runtime itself, for runtimes in another process (a
        Node process, a browser page) where timing `run` from Python would count the transport;
        None: time `run` from here."""
        return None

    def artifact_io(self) -> dict | None:
        """The artifact file's own tensors when they differ from the model's (e.g. quantized I/O)."""
        return None

    @classmethod
    def version(cls) -> str | None:
        from .. import deps

        return deps.version(cls.toolchain)


class NamedByManifest(Runner):
    """A runner whose artifact does not expose its tensors the way the model names them (a TVM
    module, a TF.js folder run in another process): the manifest's specs are its inputs/outputs."""

    _inputs: list[TensorSpec] = []
    _outputs: list[TensorSpec] = []

    def bind(self, inputs, outputs) -> "NamedByManifest":
        self._inputs, self._outputs = list(inputs), list(outputs)
        return self

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs
