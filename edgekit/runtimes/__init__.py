"""Runtimes that load and run an artifact: one file each, listed in RUNTIME_MODULES (the registry).

A runner needs numpy and its own runtime, nothing else (no torch), so the same code runs on a
device. Add a runtime: a new file here with a `Runner` subclass (edgekit.runtimes.base) that names
its runtime and its toolchain (edgekit.deps) once, as class attributes, and ends with
`RUNNER = ThatRunner`; then its module name in RUNTIME_MODULES. A runtime outside the repository is
the same file named in EDGEKIT_PLUGINS (edgekit.plugins).
"""
from __future__ import annotations

import importlib

from ..errors import UsageError, did_you_mean
from .base import Closing, Runner

# Modules of this package that define RUNNER. TF.js runs in Node (tfjs) and in a page of headless
# Chromium (chromium: runtime "tfjs-chromium").
RUNTIME_MODULES = ["onnxruntime", "torchscript_lite", "litert", "executorch", "tvm", "tensorrt", "coreml", "tfjs",
                   "chromium"]


def all_runners() -> dict[str, type[Runner]]:
    """runtime name -> Runner class: the built-in ones, then plug-ins (EDGEKIT_PLUGINS)."""
    from ..plugins import exported, merged

    found = [importlib.import_module(f"{__name__}.{m}").RUNNER for m in RUNTIME_MODULES]
    return merged({cls.runtime: cls for cls in found}, exported("RUNNER", "RUNNERS"), lambda c: c.runtime, "runtime")


def runner_class(name: str) -> type[Runner]:
    found = all_runners()
    if name not in found:
        raise UsageError(f"unknown runtime {name!r}{did_you_mean(name, list(found))}; runtimes: {', '.join(found)}")
    return found[name]


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


class ChannelLastInputs(Closing):
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

    def close(self) -> None:
        self.runner.close()


def toolchain_of(name: str) -> str:
    return runner_class(name).toolchain
