"""The one interface every runtime implements (after Polygraphy's runners)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import TensorSpec


def output_list(y) -> list:
    """A model's return value as a list of outputs: a tensor, a tuple/list of them, or a dict."""
    return list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (tuple, list)) else [y]


class Runner:
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

    def artifact_io(self) -> dict | None:
        """The artifact file's own tensors when they differ from the model's (e.g. quantized I/O)."""
        return None

    @classmethod
    def version(cls) -> str | None:
        from .. import deps

        return deps.version(cls.toolchain)
