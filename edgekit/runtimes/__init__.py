"""Runtimes that load and run an artifact: one file each, listed in this one table.

A runner needs numpy and its own runtime, nothing else (no torch), so the same code runs on a
device. Add a runtime: a new file with a `Runner` subclass and one line here.
"""
from __future__ import annotations

import importlib

from ..errors import UsageError, did_you_mean
from .base import Runner

# runtime name -> (module, class, toolchain name in edgekit.deps)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("edgekit.runtimes.onnxruntime", "OrtRunner", "onnxruntime"),
    "torchscript-lite": ("edgekit.runtimes.torchscript_lite", "TorchScriptLiteRunner", "torch"),
    "litert": ("edgekit.runtimes.litert", "LiteRTRunner", "ai-edge-litert"),
    "executorch": ("edgekit.runtimes.executorch", "ExecuTorchRunner", "executorch"),
    "tvm": ("edgekit.runtimes.tvm", "TvmRunner", "tvm"),
    "tensorrt": ("edgekit.runtimes.tensorrt", "TensorRTRunner", "tensorrt"),
    "coreml": ("edgekit.runtimes.coreml", "CoreMLRunner", "coremltools"),
    # TF.js (@tensorflow/tfjs, pure JS) in Node, and the same library in a page of headless Chromium.
    "tfjs": ("edgekit.runtimes.tfjs", "TfjsNodeRunner", "node-tfjs"),
    "tfjs-chromium": ("edgekit.runtimes.chromium", "ChromiumRunner", "chromium"),
}


def runner_class(name: str) -> type[Runner]:
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}{did_you_mean(name, list(RUNTIMES))}")
    module, cls, _ = RUNTIMES[name]
    return getattr(importlib.import_module(module), cls)


def open_runner(runtime: str, path, threads=None, inputs=None, outputs=None, layout=None) -> Runner:
    """Load an artifact on its runtime, naming its tensors from the manifest where the format can't.
    `layout` ({input: "NHWC"}, from the artifact's record) makes the runner take the model's own
    NCHW arrays and hand the artifact channel-last ones, so callers never guess."""
    from .buckets import BucketRunner, is_bucketed

    if is_bucketed(path):  # one static artifact per shape (edgekit.runtimes.buckets)
        return BucketRunner(path, lambda one: open_runner(runtime, one, threads, inputs, outputs, layout))
    r = runner_class(runtime)(path, threads=threads)
    r = r.bind(inputs, outputs) if inputs is not None else r
    return ChannelLastInputs(r, layout) if layout else r


class ChannelLastInputs:
    """Wraps a runner whose artifact takes some 4-D inputs as NHWC; feeds stay NCHW (the model's)."""

    def __init__(self, runner: Runner, layout: dict):
        self.runner, self.nhwc = runner, [n for n, v in layout.items() if str(v).upper() == "NHWC"]

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def _nhwc(self, feeds):
        return {n: (a.transpose(0, 2, 3, 1) if n in self.nhwc and a.ndim == 4 else a) for n, a in feeds.items()}

    def run(self, feeds):
        return self.runner.run(self._nhwc(feeds))

    def profile(self, feeds, runs, warmup=5):
        return self.runner.profile(self._nhwc(feeds), runs, warmup)

    def timed_runs(self, feeds, runs, min_time_s):
        return self.runner.timed_runs(self._nhwc(feeds), runs, min_time_s)


def toolchain_of(name: str) -> str:
    return RUNTIMES[name][2]
