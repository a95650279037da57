"""TensorRT runtime: deserializes an engine and runs it on the GPU (execution context, device
buffers through cuda-python's runtime API). Needs an NVIDIA GPU, TensorRT and `cuda-python`;
engines come from `python -m edgekit build BUNDLE` on the same device."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import deps
from ..errors import ConversionError
from ..manifest import TensorSpec
from .base import Runner


def _check(result):
    """cuda-python calls return (error, values...): raise on error, return the values."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise ConversionError(f"CUDA runtime error {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorRTRunner(Runner):
    runtime = "tensorrt"
    toolchain = "tensorrt"

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(path, threads)  # threads: the GPU decides; kept for the common interface
        trt = deps.require("tensorrt", "running TensorRT engines")
        cudart = deps.require("cuda-python", "GPU buffers for TensorRT")
        self.trt, self.cudart = trt, cudart
        if self.path.suffix != ".engine":
            raise ConversionError(f"{self.path.name} is not a TensorRT engine yet: build it on the device first",
                                  hint="python -m edgekit build BUNDLE")
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ConversionError(f"TensorRT could not load {self.path.name}: engines only load on the GPU model "
                                  "and TensorRT version that built them", hint="python -m edgekit build BUNDLE")
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._specs = {n: TensorSpec(n, tuple(self.engine.get_tensor_shape(n)),
                                     np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))).name) for n in names}
        self._in = [n for n in names if is_input[n]]
        self._out = [n for n in names if not is_input[n]]
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)
        # An input with dynamic dims (-1 in the engine) gets its profile's max shape here; outputs are
        # (re)allocated in run() once the inputs' shapes say how large they are.
        self._dynamic = any(-1 in tuple(self.engine.get_tensor_shape(n)) for n in self._in)
        for n in self._in:
            shape = tuple(self.engine.get_tensor_shape(n))
            if -1 in shape:
                shape = tuple(self.engine.get_tensor_profile_shape(n, 0)[2])  # (min, opt, max)[max]
            self._reserve(n, int(np.prod(shape)) * np.dtype(self._specs[n].dtype).itemsize)
        if not self._dynamic:
            for n in self._out:
                self._reserve(n, int(np.prod(self._specs[n].shape)) * np.dtype(self._specs[n].dtype).itemsize)

    def _reserve(self, name: str, nbytes: int) -> None:
        ptr, cap = self._buffers.get(name, (None, 0))
        if ptr is not None and cap >= nbytes:
            return
        if ptr is not None:
            self.cudart.cudaFree(ptr)
        ptr = _check(self.cudart.cudaMalloc(max(nbytes, 1)))
        self._buffers[name] = (ptr, max(nbytes, 1))
        self.context.set_tensor_address(name, int(ptr))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self._specs[n] for n in self._in]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self._specs[n] for n in self._out]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self.cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for n in self._in:
            a = np.ascontiguousarray(feeds[n], dtype=self._specs[n].dtype)
            if self._dynamic:  # within the optimization profile's bounds, or TensorRT refuses it here
                if not self.context.set_input_shape(n, a.shape):
                    raise ConversionError(f"input {n}: shape {a.shape} is outside the engine's optimization profile "
                                          f"{tuple(tuple(x) for x in self.engine.get_tensor_profile_shape(n, 0))}")
            elif a.shape != self._specs[n].shape:
                raise ConversionError(f"input {n}: shape {a.shape}, the engine takes {self._specs[n].shape}")
            _check(cudart.cudaMemcpyAsync(self._buffers[n][0], a.ctypes.data, a.nbytes, h2d, self.stream))
        shapes = {n: tuple(self.context.get_tensor_shape(n)) if self._dynamic else self._specs[n].shape for n in self._out}
        outs = {n: np.empty(shapes[n], self._specs[n].dtype) for n in self._out}
        for n, a in outs.items():
            self._reserve(n, a.nbytes)
        if not self.context.execute_async_v3(int(self.stream)):
            raise ConversionError("TensorRT execute_async_v3 failed")
        for n, a in outs.items():
            _check(cudart.cudaMemcpyAsync(a.ctypes.data, self._buffers[n][0], a.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return outs

    def __del__(self):
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self.cudart.cudaFree(ptr)


RUNNER = TensorRTRunner
