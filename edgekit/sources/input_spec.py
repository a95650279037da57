"""`--input NAME:SHAPE[:DTYPE]`: the user says what a model's inputs are; edgekit never guesses.

    image:1x3x640x640            a fixed shape
    input_ids:1x128:int64        with the dtype (checked against the model's own)
    image:1x3x[320..1280]x640    a range for a dynamic dim: artifacts keep it dynamic where their
                                 runtime can (else shape buckets), and are verified at several sizes
    sr=16000                     a fixed value for a control input (a sample rate, a mode flag):
                                 every example, verification and calibration sample gets it

A source whose inputs have symbolic dims (an ONNX export with dynamic axes) stops with exit 2
naming them and showing an `--input` line to complete, instead of silently making every symbolic
dim 1 (a text detector once "passed" verification at [1, 3, 1, 1]).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError, did_you_mean

_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
_DIM = re.compile(r"(?P<fixed>[0-9]+)|\[(?P<lo>[0-9]+)\.\.(?P<hi>[0-9]+)\]")


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple  # each an int, or (lo, hi) for a range; empty for a value spec
    dtype: str | None = None
    value: float | None = None  # NAME=VALUE: the input always holds this value (shape from the model)

    @property
    def static(self) -> bool:
        return all(isinstance(d, int) for d in self.dims)

    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.dims)

    def text(self) -> str:
        if self.value is not None:
            return f"{self.name}={self.value:g}"
        dims = "x".join(str(d) if isinstance(d, int) else f"[{d[0]}..{d[1]}]" for d in self.dims)
        return f"{self.name}:{dims}" + (f":{self.dtype}" if self.dtype else "")


def parse_input(text: str) -> InputSpec:
    """One `--input` value, or a UsageError that shows the form."""
    form = ("--input NAME:SHAPE[:DTYPE] or NAME=VALUE, e.g. --input image:1x3x224x224, --input input_ids:1x128:int64, "
            "--input sr=16000")
    if "=" in text and ":" not in text.split("=", 1)[0]:
        name, _, value = text.partition("=")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--input {text!r}: {value!r} is not a number", hint=form) from None
        if not name or not np.isfinite(number):
            raise UsageError(f"--input {text!r} is not NAME=VALUE with a finite number", hint=form)
        return InputSpec(name, (), None, number)
    name, sep, rest = text.partition(":")
    if not sep or not name or not rest:
        raise UsageError(f"--input {text!r} is not NAME:SHAPE[:DTYPE]", hint=form)
    shape_text, _, dtype = rest.partition(":")
    dims = []
    for part in shape_text.split("x"):
        m = _DIM.fullmatch(part)
        if not m:
            raise UsageError(f"--input {text!r}: {part!r} is not a size (a whole number, or [MIN..MAX] for a "
                             "dynamic dim)", hint=form)
        if m["fixed"] is not None:
            d = int(m["fixed"])
            if d < 1:
                raise UsageError(f"--input {text!r}: sizes are at least 1", hint=form)
            dims.append(d)
        else:
            lo, hi = int(m["lo"]), int(m["hi"])
            if not 1 <= lo <= hi:
                raise UsageError(f"--input {text!r}: a range needs 1 <= MIN <= MAX", hint=form)
            dims.append((lo, hi))
    if dtype and dtype not in _DTYPES:
        raise UsageError(f"--input {text!r}: unknown dtype {dtype!r}{did_you_mean(dtype, list(_DTYPES))}",
                         hint=f"dtypes: {', '.join(_DTYPES)}")
    return InputSpec(name, tuple(dims), dtype or None)


def parse_inputs(texts: list[str] | None) -> dict[str, InputSpec]:
    specs: dict[str, InputSpec] = {}
    for t in texts or []:
        s = parse_input(t)
        if s.name in specs:
            raise UsageError(f"--input {s.name} is given twice")
        specs[s.name] = s
    return specs


def resolve_shape(model_path, name: str, dims: list, dtype: str, specs: dict[str, InputSpec]) -> tuple[int, ...]:
    """The shape to compile one model input at (a range's opt size for a dynamic dim): the model's own
    when fully static and no spec is given; else the spec's, which must agree with every fixed dim of
    the model. `dims` holds ints for fixed dims and strings (the symbolic name, or "?") for the others."""
    spec = specs.get(name)
    symbolic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
    if spec is not None and spec.value is not None:  # a value spec: the model's shape, which must be static
        if symbolic:
            raise UsageError(f"--input {spec.text()}: input {name!r} has symbolic dims ({_show(dims)}); a fixed value "
                             "needs a fixed shape")
        return tuple(dims)
    if spec is None:
        if symbolic:
            names = [_placeholder(dims[i], i) for i in symbolic]
            suggested = "x".join(str(d) if isinstance(d, int) else _placeholder(d, i) for i, d in enumerate(dims))
            raise UsageError(
                f"{model_path}: input {name!r} has symbolic dims "
                f"{', '.join(repr(dims[i]) for i in symbolic)} (shape {_show(dims)}); edgekit never invents a size",
                hint=f"--input {name}:{suggested}" + (f":{dtype}" if dtype != "float32" else "")
                     + f" with {', '.join(names)} replaced by the sizes it runs at on the device (one --input per input)")
        return tuple(dims)
    if len(spec.dims) != len(dims):
        raise UsageError(f"--input {spec.text()}: the model's input {name!r} has {len(dims)} dims "
                         f"({_show(dims)}), the spec {len(spec.dims)}")
    clash = [i for i, d in enumerate(dims) if isinstance(d, int) and d != spec.dims[i]]
    if clash:
        raise UsageError(f"--input {spec.text()}: dim {clash[0]} of {name!r} is fixed at {dims[clash[0]]} in the "
                         f"model ({_show(dims)})" + (", so it cannot vary" if not isinstance(spec.dims[clash[0]], int) else ""))
    if spec.dtype and spec.dtype != dtype:
        raise UsageError(f"--input {spec.text()}: the model's input {name!r} is {dtype}, not {spec.dtype}")
    from .dynamic import default_opt

    return tuple(d if isinstance(d, int) else default_opt(*d) for d in spec.dims)


def dynamic_dims(model_path, found: list[tuple[str, list, str]], specs: dict[str, InputSpec]) -> list:
    """The DynamicDims that ranges in the specs make: one per symbol of the model, so inputs that share
    a symbolic dim (input_ids and attention_mask: "seq") share one dim, which must then have one range."""
    from .dynamic import DynamicDim, default_opt

    by_name: dict[str, dict] = {}
    for name, dims, _ in found:
        spec = specs.get(name)
        for axis, d in enumerate(spec.dims if spec is not None and spec.value is None else ()):
            if isinstance(d, int):
                continue
            symbol = dims[axis] if isinstance(dims[axis], str) and dims[axis] != "?" else f"{name}_{axis}"
            rec = by_name.setdefault(symbol, {"range": d, "uses": []})
            if rec["range"] != d:
                raise UsageError(f"--input {spec.text()}: dim {symbol!r} is shared with input {rec['uses'][0][0]!r}, "
                                 f"which gives it [{rec['range'][0]}..{rec['range'][1]}]; one symbol has one range")
            rec["uses"].append((name, axis))
    for name, dims, _ in found:  # a fixed size for a symbol another input lets vary is a contradiction
        spec = specs.get(name)
        for axis, d in enumerate(spec.dims if spec is not None and spec.value is None else ()):
            if isinstance(d, int) and isinstance(dims[axis], str) and dims[axis] in by_name:
                raise UsageError(f"--input {spec.text()}: dim {dims[axis]!r} is dynamic in another --input; give the "
                                 f"same range here")
    return [DynamicDim(k, r["range"][0], r["range"][1], default_opt(*r["range"]), tuple(r["uses"]))
            for k, r in by_name.items()]


def apply_values(samples: list[dict], specs: dict[str, InputSpec]) -> list[dict]:
    """Every sample with each NAME=VALUE input set to its value (shape and dtype kept)."""
    fixed = {n: s.value for n, s in specs.items() if s.value is not None}
    if not fixed:
        return samples
    return [{k: (np.full(a.shape, fixed[k], dtype=a.dtype) if k in fixed else a) for k, a in s.items()} for s in samples]


def check_names(model_path, model_inputs: list[str], specs: dict[str, InputSpec]) -> None:
    for name in specs:
        if name not in model_inputs:
            raise UsageError(f"--input {name}: {model_path} has no input {name!r}{did_you_mean(name, model_inputs)}; "
                             f"its inputs: {', '.join(model_inputs)}")


def _placeholder(dim, index: int) -> str:
    """A symbolic dim as a shell-safe word for the suggested --input line: its own name when that is
    plain, else D<index>."""
    return dim.upper() if isinstance(dim, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,15}", dim) else f"D{index}"


def _show(dims: list) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def apply_to_torch_source(src, texts: list[str] | None) -> None:
    """`--input` on a PyTorch source (a factory, a built-in, a .pt2): its shapes come from its example,
    so fixed sizes must equal the example's and a range must contain the example's size (which becomes
    the opt size). Ranges replace the source's own dynamic dims. Ranges with the same bounds and the
    same example size on several inputs are taken as one dim (input_ids and attention_mask have one
    length; torch.export refuses two symbols it finds equal)."""
    from .dynamic import DynamicDim

    specs = parse_inputs(texts)
    check_names(src.spec, list(src.example), specs)
    groups: dict[tuple, list] = {}
    for name, spec in specs.items():
        if spec.value is not None:
            continue
        a = src.example[name]
        if len(spec.dims) != a.ndim:
            raise UsageError(f"--input {spec.text()}: the example's {name!r} has {a.ndim} dims ({list(a.shape)}), the "
                             f"spec {len(spec.dims)}")
        if spec.dtype and spec.dtype != str(a.dtype):
            raise UsageError(f"--input {spec.text()}: the example's {name!r} is {a.dtype}, not {spec.dtype}")
        for i, d in enumerate(spec.dims):
            if isinstance(d, int) and d != a.shape[i]:
                raise UsageError(f"--input {spec.text()}: dim {i} of the example's {name!r} is {a.shape[i]}; a PyTorch "
                                 "source's shapes come from its example", hint="change the example the factory returns, "
                                 f"or give a range that contains {a.shape[i]}")
            if not isinstance(d, int):
                if not d[0] <= a.shape[i] <= d[1]:
                    raise UsageError(f"--input {spec.text()}: the range [{d[0]}..{d[1]}] leaves out the example's size "
                                     f"{a.shape[i]} (dim {i} of {name!r}), which artifacts are built and optimized at")
                groups.setdefault((d, a.shape[i]), []).append((name, i))
    src.example = apply_values([src.example], specs)[0]  # NAME=VALUE: every sample holds the value
    src.verify_inputs, src.calib_inputs = apply_values(src.verify_inputs, specs), apply_values(src.calib_inputs, specs)
    if groups:
        src.dynamic = [DynamicDim(f"{uses[0][0]}_{uses[0][1]}" if len(uses) == 1 else f"dim{k}", lo, hi, size,
                                  tuple(uses)) for k, (((lo, hi), size), uses) in enumerate(groups.items())]
