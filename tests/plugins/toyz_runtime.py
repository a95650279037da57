"""The toy format's runtime: decompress a `.toyz` in memory and run it on ONNX Runtime's CPU provider.
It reuses edgekit's ONNX Runtime runner for everything but loading (a plug-in may build on built-ins)."""
from __future__ import annotations

import gzip

from edgekit import deps
from edgekit.runtimes.base import Runner
from edgekit.runtimes.onnxruntime import OrtRunner


class ToyzRunner(OrtRunner):
    runtime = "toyz-ort"
    toolchain = "onnxruntime"

    def __init__(self, path, threads=None):
        Runner.__init__(self, path, threads)
        ort = deps.require(self.toolchain, "running .toyz artifacts")
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(gzip.decompress(self.path.read_bytes()), so,
                                            providers=["CPUExecutionProvider"])

    def profile(self, feeds, runs, warmup=5):
        return None  # ORT's profiler reopens the file, which is compressed here


RUNNER = ToyzRunner
