"""Core ML runner (`.mlpackage`, an ML Program): `coremltools.models.MLModel(...).predict`, macOS only.

coremltools converts and inspects packages on any OS, but its prediction API is a binding to
Apple's Core ML framework (`coremltools.libcoremlpython`), which exists only in the macOS wheels;
elsewhere loading raises ToolchainMissing saying so. Tensor names, shapes and types come from the
package's own spec. Core ML has no int64 arrays: int64 feeds (token ids) are converted to the
spec's int32 after a range check, never wrapped. Compute units (ALL, CPU_AND_NE, CPU_AND_GPU,
CPU_ONLY) are the constructor's argument, else what the converter wrote into the package's
metadata (`edgekit.compute_units`), else ALL. Core ML has no thread-count setting. The package's
own tensor types (int32 ids) are recorded by the converter (`converter.artifact_io`), not here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import deps
from ..errors import InputError, ToolchainMissing
from ..manifest import TensorSpec
from .base import Runner

NEEDS_MACOS = "Core ML predictions need macOS (coremltools' libcoremlpython is macOS-only)"
COMPUTE_UNITS_KEY = "edgekit.compute_units"  # written by converters/coreml.py
# Core ML multi-array types (FeatureTypes.proto ArrayDataType names) -> numpy dtype names
_ARRAY_TYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32", "INT8": "int8"}


def _specs(features) -> list[TensorSpec]:
    from coremltools.proto import FeatureTypes_pb2

    names = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name
    out = []
    for f in features:
        if f.type.WhichOneof("Type") == "multiArrayType":
            a = f.type.multiArrayType
            out.append(TensorSpec(f.name, tuple(int(s) for s in a.shape), _ARRAY_TYPES.get(names(a.dataType), "?")))
        else:  # images, dictionaries, ...: not something edgekit's converter writes
            out.append(TensorSpec(f.name, (-1,), f.type.WhichOneof("Type") or "?"))
    return out


def _cast(name: str, a: np.ndarray, dtype: str) -> np.ndarray:
    want = np.dtype(dtype)
    if a.dtype == want:
        return np.ascontiguousarray(a)
    if np.issubdtype(want, np.integer) and np.issubdtype(a.dtype, np.integer) and a.size:
        info = np.iinfo(want)
        if a.min() < info.min or a.max() > info.max:
            raise InputError(f"input {name!r}: values {a.min()}..{a.max()} do not fit Core ML's {want}")
    elif np.issubdtype(want, np.integer) and not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"input {name!r}: the Core ML model takes {want}, got {a.dtype}")
    return np.ascontiguousarray(a.astype(want))


class CoreMLRunner(Runner):
    runtime = "coreml"
    toolchain = "coremltools"

    def __init__(self, path: Path, threads: int | None = None, compute_units: str | None = None):
        super().__init__(path, threads)
        ct = deps.require("coremltools", "running Core ML packages")
        try:
            from coremltools.libcoremlpython import _MLModelProxy  # noqa: F401 — the Core ML binding itself
        except ImportError as e:
            import platform

            raise ToolchainMissing(f"{NEEDS_MACOS}; this is {platform.system()} {platform.machine()} ({e})",
                                   hint="run it on a Mac: python -m edgekit build BUNDLE (or verify, or "
                                        "pytest device_tests/test_coreml_mac.py --bundle BUNDLE)") from None
        self._spec = ct.utils.load_spec(str(self.path))
        meta = dict(self._spec.description.metadata.userDefined)
        units = str(compute_units or meta.get(COMPUTE_UNITS_KEY) or "ALL").upper()
        if units not in ct.ComputeUnit.__members__:
            raise ValueError(f"compute units {units!r}: one of {', '.join(ct.ComputeUnit.__members__)}")
        self.compute_units = units
        self.model = ct.models.MLModel(str(self.path), compute_units=ct.ComputeUnit[units])
        self._inputs = _specs(self._spec.description.input)
        self._outputs = _specs(self._spec.description.output)

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [s.name for s in self._inputs if s.name not in feeds]
        if missing:
            raise InputError(f"the Core ML model takes {[s.name for s in self._inputs]}; missing {missing}")
        args = {s.name: _cast(s.name, np.asarray(feeds[s.name]), s.dtype) for s in self._inputs}
        out = self.model.predict(args)
        return {s.name: np.asarray(out[s.name]) for s in self._outputs}


RUNNER = CoreMLRunner
