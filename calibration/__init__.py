"""Calibration data in: one contract for every reader.

A reader returns `list[dict[str, np.ndarray]]` — one sample per entry, keyed by the model's input
names, each array shaped and typed like the model's example input — chosen with a sample limit
and a fixed seed. The basic reader here takes `.npy`/`.npz` files or a folder of them; the
toolbox (image folders, text files, methods per toolchain) builds on the same contract.
Calibration and verification data must never overlap: `check_disjoint` says where they do.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import ModelSourceError

Sample = dict[str, np.ndarray]


def _fit(a: np.ndarray, spec: np.ndarray, where: str) -> list[np.ndarray]:
    """One array -> samples shaped like `spec`: either exactly that shape, or a stack of them."""
    a = np.asarray(a)
    if a.shape == spec.shape:
        return [np.ascontiguousarray(a, dtype=spec.dtype)]
    if a.shape[1:] == spec.shape:
        return [np.ascontiguousarray(x, dtype=spec.dtype) for x in a]
    if spec.shape[:1] == (1,) and a.shape[1:] == spec.shape[1:]:  # [N, ...] for a batch-1 model
        return [np.ascontiguousarray(x[None], dtype=spec.dtype) for x in a]
    raise ModelSourceError(f"{where}: array of shape {list(a.shape)} does not fit the model input "
                           f"{list(spec.shape)} (give one sample, or a stack of samples)")


def read_arrays(path, example: Sample, limit: int = 256, seed: int = 0) -> list[Sample]:
    """`.npy` (single-input models), `.npz` (arrays named like the inputs), or a folder of them."""
    p = Path(path)
    if not p.exists():
        raise ModelSourceError(f"calibration data not found: {p}")
    files = sorted(x for x in p.rglob("*") if x.suffix in (".npy", ".npz")) if p.is_dir() else [p]
    if not files:
        raise ModelSourceError(f"{p} holds no .npy or .npz files")
    names = list(example)
    samples: list[Sample] = []
    for f in files:
        if f.suffix == ".npy":
            if len(names) != 1:
                raise ModelSourceError(f"{f}: a .npy holds one array; this model has inputs {names}: use .npz")
            samples += [{names[0]: a} for a in _fit(np.load(f, allow_pickle=False), example[names[0]], str(f))]
        else:
            with np.load(f, allow_pickle=False) as z:
                missing = [n for n in names if n not in z.files]
                if missing:
                    raise ModelSourceError(f"{f}: missing arrays {missing} (it has {z.files})")
                per_input = {n: _fit(z[n], example[n], f"{f}:{n}") for n in names}
            counts = {len(v) for v in per_input.values()}
            if len(counts) != 1:
                raise ModelSourceError(f"{f}: inputs hold different numbers of samples {sorted(counts)}")
            samples += [{n: per_input[n][i] for n in names} for i in range(counts.pop())]
    if len(samples) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), size=limit, replace=False))
        samples = [samples[i] for i in keep]
    return samples


def sample_hash(s: Sample) -> str:
    h = hashlib.sha256()
    for k in sorted(s):
        h.update(k.encode() + str(s[k].dtype).encode() + str(s[k].shape).encode() + s[k].tobytes())
    return h.hexdigest()


def dataset_hash(samples: list[Sample]) -> str:
    """Identifies a calibration set in a manifest (order-sensitive, like the calibration itself)."""
    return hashlib.sha256("".join(sample_hash(s) for s in samples).encode()).hexdigest()


def check_disjoint(calib: list[Sample], verify: list[Sample]) -> None:
    """Raise if any verification sample also appears in the calibration data."""
    seen = {sample_hash(s) for s in calib}
    dup = [i for i, s in enumerate(verify) if sample_hash(s) in seen]
    if dup:
        raise ModelSourceError(f"{len(dup)} verification sample(s) also appear in the calibration data "
                               f"(first: #{dup[0]}); held-out data must be held out")
