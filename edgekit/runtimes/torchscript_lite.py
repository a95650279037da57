"""TorchScript lite interpreter runner (`.ptl`): the runtime PyTorch Mobile apps embed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import deps
from ..manifest import TensorSpec
from .base import Runner, output_list


class TorchScriptLiteRunner(Runner):
    runtime = "torchscript-lite"
    toolchain = "torch"

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(path, threads)
        torch = deps.require("torch", "running .ptl artifacts (TorchScript lite interpreter)")
        if threads:
            torch.set_num_threads(threads)
        from torch.jit.mobile import _load_for_lite_interpreter

        self._torch = torch
        self.module = _load_for_lite_interpreter(str(self.path))
        self._inputs: list[TensorSpec] | None = None
        self._outputs: list[str] | None = None

    def bind(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> "TorchScriptLiteRunner":
        """A .ptl file carries no tensor names; the manifest's specs name them."""
        self._inputs, self._outputs = inputs, [o.name for o in outputs]
        return self

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs or []

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(n, (-1,), "float32") for n in (self._outputs or [])]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [s.name for s in self._inputs] if self._inputs else list(feeds)
        with self._torch.no_grad():
            y = self.module(*[self._torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
        ys = output_list(y)
        out_names = self._outputs or (["output"] if len(ys) == 1 else [f"output_{i}" for i in range(len(ys))])
        return {n: t.detach().numpy() for n, t in zip(out_names, ys)}


RUNNER = TorchScriptLiteRunner
