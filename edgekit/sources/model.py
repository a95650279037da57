"""A loaded model, whatever it came from: the module or ONNX file, its inputs, and its data.

Every input that reaches an exporter goes through `owned_array`: contiguous, owned memory, the
expected dtype. Users hand over numpy views (e.g. `x[None]`, stride 0 on the new axis) all the
time; some exporters (ExecuTorch: "0 in strides is not supported") reject them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelSourceError

Sample = dict[str, np.ndarray]


@dataclass
class ModelSource:
    name: str  # short name for tables and file names
    spec: str  # what the user typed
    kind: str  # "torch" | "onnx"
    sha256: str  # of the weights / file: identifies the model in manifests and caches
    example: Sample  # one input per name, in the model's input order
    module: Any = None  # torch.nn.Module when kind == "torch"
    onnx_path: Path | None = None  # when kind == "onnx"
    output_names: list[str] | None = None
    task: str = "generic"  # "classification" | "embedding" | "generic"
    labels: list[str] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)  # layout, mean/std, size, tokenizer...
    verify_inputs: list[Sample] = field(default_factory=list)  # held out: never calibration data
    verify_labels: np.ndarray | None = None  # ground truth for verify_inputs, if known
    verify_data: str = ""  # where verify_inputs came from, recorded in the manifest
    calib_inputs: list[Sample] = field(default_factory=list)
    # A recurrent model's state, made explicit: {output name: the input it feeds on the next call}
    # (a factory's "state"). Verified over a sequence of calls; the predictor's stream() carries it.
    state: dict[str, str] | None = None
    # Dims that vary between calls, with bounds (edgekit.sources.dynamic); the example sits at each
    # one's opt size. Empty: every artifact has the example's static shapes.
    dynamic: list = field(default_factory=list)

    @property
    def input_names(self) -> list[str]:
        return list(self.example)


def owned_array(x, name: str = "input") -> np.ndarray:
    """A C-contiguous numpy array that owns its memory, from a tensor, array or nested list."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().contiguous().numpy()
    try:
        a = np.array(x, copy=True, order="C")
    except Exception as e:  # pragma: no cover - exotic objects
        raise ModelSourceError(f"example input {name!r} is not an array or tensor: {e}") from None
    if a.dtype == object:
        raise ModelSourceError(f"example input {name!r} is not numeric (dtype=object)")
    return a


def as_sample(inputs, names: list[str] | None = None, float_dtype: str | None = None) -> Sample:
    """Normalize one example: tensor, array, tuple/list of them, or dict name -> tensor."""
    if isinstance(inputs, dict):
        items = list(inputs.items())
    else:
        seq = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
        if names and len(names) != len(seq):
            raise ModelSourceError(f"{len(names)} input names given for {len(seq)} example inputs")
        default = ["input"] if len(seq) == 1 else [f"input_{i}" for i in range(len(seq))]
        items = list(zip(names or default, seq))
    out: Sample = {}
    for name, x in items:
        a = owned_array(x, name)
        if float_dtype and a.dtype.kind == "f" and str(a.dtype) != float_dtype:
            a = a.astype(float_dtype)  # e.g. float64 numpy data for a float32 model
        out[str(name)] = a
    return out


def random_like(example: Sample, count: int, seed: int) -> list[Sample]:
    """Held-out inputs when the user gave none: seeded, same shapes/dtypes, value ranges like the example.

    Recorded in the manifest as verify_data="random", because random inputs exercise the graph but
    not the data distribution; factories should return real `verification_inputs`.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        s = {}
        for name, x in example.items():
            if x.dtype.kind == "f":
                mu, sd = float(x.mean()), float(x.std()) or 1.0
                s[name] = (rng.standard_normal(x.shape) * sd + mu).astype(x.dtype)
            elif x.dtype.kind in "iu":
                lo, hi = int(x.min()), int(x.max())
                s[name] = rng.integers(lo, hi + 1, size=x.shape).astype(x.dtype)
            elif x.dtype.kind == "b":
                s[name] = rng.integers(0, 2, size=x.shape).astype(bool)
            else:
                raise ModelSourceError(f"cannot make verification inputs of dtype {x.dtype} for {name!r}")
        samples.append(s)
    return samples
