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


# ETDump events that contain other events (their time is the sum of the leaves plus dispatch).
_CONTAINER_EVENTS = {"Method::execute", "DELEGATE_CALL", "OPERATOR_CALL", "Method::init", "Program::load_method"}


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

    def profile(self, feeds: dict[str, np.ndarray], runs: int, warmup: int = 5) -> dict:
        """ExecuTorch's ETDump, read with its devtools Inspector: one event per XNNPACK operator
        inside a delegate call (1 us resolution) and one per portable kernel. Writing the ETDump
        resets it, so the warm-up is written away first and the file holds the timed runs only."""
        import re
        import tempfile

        from executorch.devtools import Inspector
        from executorch.devtools.inspector import TimeScale
        from executorch.runtime import Runtime

        from .base import profile_summary

        program = Runtime.get().load_program(self.path, enable_etdump=True)
        method = program.load_method("forward")
        args = [self._torch.from_numpy(np.array(feeds[n], order="C")) for n in self._in_names]
        for _ in range(warmup):
            method.execute(args)
        with tempfile.TemporaryDirectory() as d:
            program.write_etdump_result_to_file(f"{d}/warmup.etdp", None)
            for _ in range(runs):
                method.execute(args)
            program.write_etdump_result_to_file(f"{d}/timed.etdp", None)
            inspector = Inspector(etdump_path=f"{d}/timed.etdp", source_time_scale=TimeScale.NS,
                                  target_time_scale=TimeScale.US)
            events = []
            for block in inspector.event_blocks:
                for i, ev in enumerate(block.events):
                    # containers hold the leaves' time: count the leaves (XNNPACK ops, portable kernels)
                    if ev.name in _CONTAINER_EVENTS or not ev.perf_data or block.name != "Execute":
                        continue
                    op = ev.name[len("native_call_"):] if ev.name.startswith("native_call_") else ev.name
                    op = re.sub(r" #\d+$", "", op)  # XNNPACK numbers each instance: aggregate per op type
                    op = f"{op} (XNNPACK)" if ev.is_delegated_op else f"{op} (portable)"
                    events += [(op, f"{ev.name}#{i}", float(us)) for us in ev.perf_data.raw]
        return profile_summary(events, runs, "ExecuTorch ETDump via executorch.devtools.Inspector: XNNPACK "
                                             "operators inside delegate calls and portable kernels")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [self._torch.from_numpy(np.array(feeds[n], order="C")) for n in self._in_names]  # one owned copy
        ys = self.method.execute(args)
        return {n: (y.numpy() if hasattr(y, "numpy") else np.asarray(y)) for n, y in zip(self._out_names, ys)}


RUNNER = ExecuTorchRunner
