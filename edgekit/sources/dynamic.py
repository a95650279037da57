"""Dynamic dims: input sizes that vary from call to call (a sequence length, an image's H and W),
always with bounds. One dim can be shared by several inputs: input_ids and attention_mask have one
length, and an artifact must see them as the same symbol.

Where they come from: `--input image:1x3x[320..1280]x[320..1280]` (an .onnx source's symbolic dims),
a factory's `dynamic_shapes`, or a built-in. Where they go: the example (and every held-out sample)
sits at each dim's `opt` size; verification runs every artifact at each of `points()` too, on
samples derived from the held-out ones (`at_point`: cropped, or wrapped around, along the dynamic
axes; real data stays real data, never noise made up for the occasion).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ModelSourceError


@dataclass(frozen=True)
class DynamicDim:
    name: str  # a symbol: the ONNX dim_param, the factory's name, or INPUT_AXIS
    lo: int
    hi: int
    opt: int  # the example's size; TensorRT's profile optimizes for it
    uses: tuple[tuple[str, int], ...]  # (input name, axis) that have this size
    verify: tuple[int, ...] = ()  # sizes verification runs at; default: lo, opt, hi
    # ((input, value), ...) for every input that has this dim: padding it with these values along the
    # dim leaves the outputs unchanged (token ids and an attention mask padded with 0 in a model that
    # pools over the mask). Only then may a static shape bucket take a shorter input, padded.
    pad: tuple = ()

    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.verify or (self.lo, self.opt, self.hi))))

    @property
    def paddable(self) -> bool:
        return bool(self.pad) and {n for n, _ in self.pad} == {n for n, _ in self.uses}

    def to_dict(self) -> dict:
        return {"name": self.name, "min": self.lo, "opt": self.opt, "max": self.hi,
                "inputs": [[n, a] for n, a in self.uses], "verify_sizes": list(self.sizes()),
                **({"pad": {n: v for n, v in self.pad}} if self.pad else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "DynamicDim":
        return cls(d["name"], int(d["min"]), int(d["max"]), int(d["opt"]), tuple((n, int(a)) for n, a in d["inputs"]),
                   tuple(int(s) for s in d.get("verify_sizes") or ()), tuple((d.get("pad") or {}).items()))


def default_opt(lo: int, hi: int) -> int:
    """The size between the bounds a profile optimizes for: their geometric mean, on the bounds' common
    step when they have one (320..1280 -> 640; 1..128 -> 11)."""
    g = math.gcd(lo, hi)
    mid = math.sqrt(lo * hi)
    return max(lo, min(hi, round(mid / g) * g if g > 1 else round(mid)))


def check_dims(dims: list[DynamicDim], example: dict[str, np.ndarray], where: str) -> None:
    """Each dim names real inputs and axes, and the example sits at its opt size within bounds."""
    for d in dims:
        if not 1 <= d.lo <= d.opt <= d.hi:
            raise ModelSourceError(f"{where}: dynamic dim {d.name!r} needs 1 <= min <= opt <= max, got "
                                   f"min {d.lo}, opt {d.opt}, max {d.hi}")
        for n, axis in d.uses:
            if n not in example:
                raise ModelSourceError(f"{where}: dynamic dim {d.name!r} names input {n!r}; the inputs are {list(example)}")
            if not 0 <= axis < example[n].ndim:
                raise ModelSourceError(f"{where}: dynamic dim {d.name!r}: input {n!r} has no axis {axis} "
                                       f"(shape {list(example[n].shape)})")
            if example[n].shape[axis] != d.opt:
                raise ModelSourceError(f"{where}: the example's {n!r} has size {example[n].shape[axis]} on axis {axis}; "
                                       f"dynamic dim {d.name!r} expects its opt size {d.opt} there")
        bad = [s for s in d.verify if not d.lo <= s <= d.hi]
        if bad:
            raise ModelSourceError(f"{where}: dynamic dim {d.name!r}: verify sizes {bad} are outside [{d.lo}..{d.hi}]")


def points(dims: list[DynamicDim]) -> list[dict[str, int]]:
    """The shapes every artifact is verified at besides the example's: the dims move together through
    their sizes (all at min, ..., all at max); with two or more dims also one mixed point (the first
    at its min, the others at their max), which catches a swapped H and W."""
    if not dims:
        return []
    n = max(len(d.sizes()) for d in dims)
    out = [{d.name: d.sizes()[min(i, len(d.sizes()) - 1)] for d in dims} for i in range(n)]
    if len(dims) > 1:
        out.append({d.name: (d.lo if i == 0 else d.hi) for i, d in enumerate(dims)})
    opt = {d.name: d.opt for d in dims}
    unique = []
    for p in out:
        if p != opt and p not in unique:
            unique.append(p)
    return unique


def bucket_points(dims: list[DynamicDim]) -> list[dict[str, int]]:
    """The shapes a converter with static artifacts gets one artifact each for: the opt shape first,
    then the verification shapes. A paddable dim drops its smallest size (its inputs pad up to the
    next bucket, and verification at that size checks the padding)."""
    sized = [DynamicDim(d.name, d.lo, d.hi, d.opt, d.uses, d.sizes()[1:] if d.paddable and len(d.sizes()) > 1
                        else d.sizes(), d.pad) for d in dims]
    first = {d.name: d.opt for d in dims}
    return [first] + [p for p in points(sized) if p != first]


def at_point(sample: dict[str, np.ndarray], dims: list[DynamicDim], point: dict[str, int]) -> dict[str, np.ndarray]:
    """The sample at another size: cropped along each dynamic axis, or wrapped around (its own values
    repeated) where the point is larger. An input without dynamic axes is kept as it is."""
    out = dict(sample)
    for d in dims:
        for n, axis in d.uses:
            a = out[n]
            out[n] = np.ascontiguousarray(np.take(a, np.arange(point[d.name]) % a.shape[axis], axis=axis))
    return out


def label(point: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in point.items())


def accepts(shape: tuple, expected: tuple, ranges: dict[int, tuple[int, int]]) -> bool:
    """Does an input of `shape` fit a tensor spec whose axes in `ranges` may vary within bounds?"""
    return len(shape) == len(expected) and all(
        ranges[i][0] <= s <= ranges[i][1] if i in ranges else s == e for i, (s, e) in enumerate(zip(shape, expected)))


def input_ranges(dims: list[DynamicDim]) -> dict[str, dict[int, tuple[str, int, int]]]:
    """{input: {axis: (dim name, min, max)}}."""
    out: dict[str, dict[int, tuple[str, int, int]]] = {}
    for d in dims:
        for n, axis in d.uses:
            out.setdefault(n, {})[axis] = (d.name, d.lo, d.hi)
    return out


def from_factory(spec, example: dict[str, np.ndarray], where: str) -> list[DynamicDim]:
    """A factory's `dynamic_shapes`: {input: {axis: (name, min, max)}} or {axis: {"name", "min", "max",
    "opt"?, "verify"?, "pad"?}}; the same name on several inputs is one dim. opt defaults to the
    example's size; "pad" (on every input with the dim) is the value that input may be padded with."""
    if not isinstance(spec, dict):
        raise ModelSourceError(f"{where}: 'dynamic_shapes' must be a dict {{input: {{axis: (name, min, max)}}}}, e.g. "
                               "{'input_ids': {1: ('seq', 1, 128)}, 'attention_mask': {1: ('seq', 1, 128)}}")
    found: dict[str, dict] = {}
    for inp, axes in spec.items():
        if not isinstance(axes, dict):
            raise ModelSourceError(f"{where}: dynamic_shapes[{inp!r}] must map axes to (name, min, max)")
        for axis, d in axes.items():
            if isinstance(d, (tuple, list)) and len(d) == 3:
                d = {"name": d[0], "min": d[1], "max": d[2]}
            if not (isinstance(d, dict) and isinstance(d.get("name"), str) and all(
                    isinstance(d.get(k), int) for k in ("min", "max"))):
                raise ModelSourceError(f"{where}: dynamic_shapes[{inp!r}][{axis!r}] = {d!r} is not (name, min, max)")
            size = example[inp].shape[int(axis)] if inp in example and 0 <= int(axis) < example[inp].ndim else None
            rec = found.setdefault(d["name"], {"min": d["min"], "max": d["max"], "opt": d.get("opt", size),
                                               "verify": tuple(d.get("verify") or ()), "uses": [], "pad": []})
            if (rec["min"], rec["max"]) != (d["min"], d["max"]):
                raise ModelSourceError(f"{where}: dynamic dim {d['name']!r} has two different bounds")
            rec["uses"].append((inp, int(axis)))
            if d.get("pad") is not None:
                rec["pad"].append((inp, d["pad"]))
    dims = [DynamicDim(name, r["min"], r["max"], r["opt"] or r["min"], tuple(r["uses"]), r["verify"], tuple(r["pad"]))
            for name, r in found.items()]
    check_dims(dims, example, where)
    return dims
