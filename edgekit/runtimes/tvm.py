"""Apache TVM runtime: loads a compiled Relax module (`.so`) and runs it on relax.VirtualMachine.

On a device only the TVM runtime is needed (`pip install apache-tvm` brings it; the compiler part
is never used here). A CUDA module comes with the cubin compiled at `compile` time: it is handed to
TVM through its CUDA compile callback, so the device does not compile CUDA source at load time.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .. import deps
from ..errors import ConversionError
from .base import NamedByManifest, output_list


def _use_cubin(cubin: Path) -> None:
    """Make TVM's load-time CUDA compile return the shipped cubin for the source it was made from."""
    import tvm_ffi

    want = cubin.with_suffix(".source-sha256")
    expected = want.read_text().strip() if want.exists() else None

    @tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
    def _compiled(code):
        if expected and hashlib.sha256(str(code).encode()).hexdigest() != expected:
            from tvm.support import nvcc  # not the source the cubin came from: compile it here

            return nvcc.tvm_callback_cuda_compile(code)
        return bytearray(cubin.read_bytes())


class TvmRunner(NamedByManifest):
    runtime = "tvm"
    toolchain = "tvm"

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(path, threads)
        if threads:  # read by TVM's thread pool when it starts, i.e. before the first run
            os.environ["TVM_NUM_THREADS"] = str(threads)
        tvm = deps.require("tvm", "running TVM modules")
        from tvm import relax

        cubin = self.path.with_suffix(".cubin")
        gpu = cubin.exists()
        if gpu:
            _use_cubin(cubin)
        lib = tvm.runtime.load_module(str(self.path))
        self.device = tvm.cuda(0) if gpu else tvm.cpu(0)
        if gpu and not self.device.exist:
            raise ConversionError(f"{self.path.name} is a CUDA module and this machine has no CUDA GPU")
        self.vm = relax.VirtualMachine(lib, self.device)
        self._inputs, self._outputs = [], []

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tvm

        args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[t.name]), device=self.device) for t in self._inputs]
        ys = output_list(self.vm["main"](*args))
        names = [t.name for t in self._outputs] or [f"output_{i}" for i in range(len(ys))]
        return {n: y.numpy() for n, y in zip(names, ys)}


RUNNER = TvmRunner
