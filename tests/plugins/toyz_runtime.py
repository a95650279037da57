"""The toy format's runtime: decompress a `.toyz` in memory and run it on ONNX Runtime's CPU provider."""
from __future__ import annotations

import gzip

import numpy as np

from edgekit import deps
from edgekit.manifest import TensorSpec
from edgekit.runtimes.base import Runner

_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool"}


class ToyzRunner(Runner):
    runtime = "toyz-ort"
    toolchain = "onnxruntime"

    def __init__(self, path, threads=None):
        super().__init__(path, threads)
        ort = deps.require(self.toolchain, "running .toyz artifacts")
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(gzip.decompress(self.path.read_bytes()), so,
                                            providers=["CPUExecutionProvider"])

    @staticmethod
    def _spec(node) -> TensorSpec:
        return TensorSpec(node.name, tuple(d if isinstance(d, int) else -1 for d in node.shape),
                          _TYPES.get(node.type, node.type))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self._spec(i) for i in self.session.get_inputs()]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self._spec(o) for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feeds)))


RUNNER = ToyzRunner
