"""ONNX Runtime (CPU execution provider) runner."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import deps
from ..manifest import TensorSpec
from .base import Runner

# ONNX Runtime type strings -> numpy dtype names
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool",
}


class OrtRunner(Runner):
    runtime = "onnxruntime"
    toolchain = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, profile_file: str | None = None):
        super().__init__(path, threads)
        ort = deps.require("onnxruntime", "running .onnx artifacts")
        so = ort.SessionOptions()
        # ENABLE_ALL at load time: layout and hardware-specific fusions belong to the machine that
        # runs the model, which is why the artifact itself is only optimized to the portable level.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if profile_file:
            so.enable_profiling = True
            so.profile_file_prefix = profile_file
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])

    @staticmethod
    def _spec(node) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else -1 for d in node.shape)
        return TensorSpec(node.name, shape, _ORT_TYPES.get(node.type, node.type))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self._spec(i) for i in self.session.get_inputs()]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self._spec(o) for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feeds)))

    def profile(self, feeds: dict[str, np.ndarray], runs: int, warmup: int = 5) -> dict:
        """ORT's own profiler in a second session (profiling adds ~10 us per node per run, so the
        timed session stays unprofiled). Profiling cannot start late in ORT's Python API: events
        before the first timed `model_run` (warm-up) are dropped instead."""
        import json
        import tempfile

        from .base import profile_summary

        with tempfile.TemporaryDirectory() as d:
            r = OrtRunner(self.path, self.threads, profile_file=f"{d}/ort")
            for _ in range(warmup + runs):
                r.run(feeds)
            trace = json.loads(Path(r.session.end_profiling()).read_text())
        timed = sorted((e for e in trace if e.get("name") == "model_run"), key=lambda e: e["ts"])[warmup:]
        start = timed[0]["ts"]
        events = [(e["args"].get("op_name", "?"), e["name"][:-len("_kernel_time")], float(e["dur"]))
                  for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start]
        return profile_summary(events, len(timed), "onnxruntime profiler (SessionOptions.enable_profiling): "
                                                   "kernel time per node, after graph optimization")


RUNNER = OrtRunner
