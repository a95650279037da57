"""ExecuTorch runtime runner (`.pte`, XNNPACK delegate): what ExecuTorch Android/iOS apps embed.

A .pte program stores no tensor names; the manifest's specs name them (in argument order).
Thread count: XNNPACK's thread pool is process-wide in ExecuTorch's Python bindings; it is reset
to the requested count when a runner is created.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import deps
from ..manifest import TensorSpec
from .base import Runner


class ExecuTorchRunner(Runner):
    runtime = "executorch"
    toolchain = "executorch"

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(path, threads)
        deps.require("executorch", "running .pte artifacts (ExecuTorch runtime)")
        import torch
        from executorch.runtime import Runtime

        if threads:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            _unsafe_reset_threadpool(int(threads))
        self._torch = torch
        self.program = Runtime.get().load_program(self.path)
        self.method = self.program.load_method("forward")
        meta = self.method.metadata
        self._n_in, self._n_out = meta.num_inputs(), meta.num_outputs()
        self._in_meta = [meta.input_tensor_meta(i) for i in range(self._n_in)]
        self._in_names = [f"input_{i}" for i in range(self._n_in)]
        self._out_names = ["output"] if self._n_out == 1 else [f"output_{i}" for i in range(self._n_out)]

    def bind(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> "ExecuTorchRunner":
        if len(inputs) == self._n_in:
            self._in_names = [s.name for s in inputs]
        if len(outputs) == self._n_out:
            self._out_names = [s.name for s in outputs]
        return self

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(n, tuple(int(x) for x in m.sizes()), str(m.dtype()).split(".")[-1].lower())
                for n, m in zip(self._in_names, self._in_meta)]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(n, (-1,), "float32") for n in self._out_names]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [self._torch.from_numpy(np.array(feeds[n], order="C")) for n in self._in_names]  # one owned copy
        ys = self.method.execute(args)
        return {n: (y.numpy() if hasattr(y, "numpy") else np.asarray(y)) for n, y in zip(self._out_names, ys)}
