"""Calibration data in: one contract for every reader.

A reader returns `list[dict[str, np.ndarray]]` — one sample per entry, keyed by the model's input
names, each array shaped and typed like the model's example input — chosen with a sample limit
and a fixed seed. `read_calibration` picks the reader from what the path holds:
- `.npy`/`.npz` files or a folder of them (read_arrays, here);
- a folder of images, preprocessed with the model's recorded size/normalization/layout (images.py);
- a `.txt` file, one sample per line, tokenized with the model's tokenizer (text.py).
Methods per toolchain are in methods.py.
Calibration and verification data must never overlap: `check_disjoint` says where they do.
"""
from __future__ import annotations

import hashlib
import zipfile
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
        try:
            samples += _read_array_file(f, names, example)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            # np.load(allow_pickle=False) refuses object arrays (pickles): say so, not "step failed"
            what = "holds Python objects (a pickle), which edgekit never loads" if "allow_pickle" in str(e) else \
                f"is not a readable numpy file ({type(e).__name__}: {str(e)[:120]})"
            raise ModelSourceError(f"{f} {what}; refused", hint="save plain numeric arrays: np.savez(path, name=array)") \
                from None
    if len(samples) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(samples), size=limit, replace=False))
        samples = [samples[i] for i in keep]
    return samples


def _read_array_file(f: Path, names: list[str], example: Sample) -> list[Sample]:
    """The samples in one .npy/.npz file, each input fitted to the example's shape and dtype."""
    samples: list[Sample] = []
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
    return samples


def read_calibration(path, example: Sample, preprocessing: dict | None = None, limit: int = 256,
                     seed: int = 0) -> list[Sample]:
    """Any calibration source for a model (see the module doc); `preprocessing` is the model's."""
    from .images import image_files, read_images
    from .text import read_text

    p = Path(path)
    if not p.exists():
        raise ModelSourceError(f"calibration data not found: {p}")
    prep = preprocessing or {}
    if p.is_file() and p.suffix.lower() == ".txt":
        return read_text(p, example, prep, limit, seed)
    if p.is_dir() and not any(x.suffix in (".npy", ".npz") for x in p.rglob("*")):
        if image_files(p):
            return read_images(p, example, prep, limit, seed)
        raise ModelSourceError(f"{p} holds no .npy/.npz arrays and no images")
    return read_arrays(p, example, limit, seed)


def sample_hash(s: Sample) -> str:
    h = hashlib.sha256()
    for k in sorted(s):
        h.update(k.encode() + str(s[k].dtype).encode() + str(s[k].shape).encode() + s[k].tobytes())
    return h.hexdigest()


def dataset_hash(samples: list[Sample]) -> str:
    """Identifies a calibration set in a manifest (order-sensitive, like the calibration itself)."""
    return hashlib.sha256("".join(sample_hash(s) for s in samples).encode()).hexdigest()


def check_disjoint(calib: list[Sample], verify: list[Sample], rel_tol: float = 1e-2) -> None:
    """Raise if any verification sample also appears in the calibration data: the same bytes, or
    (float inputs) the same data after a round trip through another format — an image saved as
    PNG and read back, a re-export at lower precision — within `rel_tol` relative L2 distance."""
    seen = {sample_hash(s) for s in calib}
    dup = [i for i, s in enumerate(verify) if sample_hash(s) in seen]
    kind = "identical"
    if not dup and calib and verify and all(np.issubdtype(a.dtype, np.floating) for a in calib[0].values()):
        c = np.stack([np.concatenate([s[k].ravel() for k in sorted(s)]) for s in calib]).astype(np.float64)
        v = np.stack([np.concatenate([s[k].ravel() for k in sorted(s)]) for s in verify]).astype(np.float64)
        c_sq = (c * c).sum(1)
        for start in range(0, len(v), 64):  # blocks keep memory at 64 x len(calib)
            vb = v[start:start + 64]
            d2 = (vb * vb).sum(1)[:, None] + c_sq[None, :] - 2.0 * vb @ c.T
            dist = np.sqrt(np.maximum(d2.min(1), 0.0))
            close = dist <= rel_tol * np.maximum(np.sqrt((vb * vb).sum(1)), 1e-12)
            dup += [start + int(i) for i in np.flatnonzero(close)]
        kind = f"near-identical (within {rel_tol:g} relative distance)"
    if dup:
        raise ModelSourceError(f"{len(dup)} verification sample(s) also appear in the calibration data, {kind} "
                               f"(first: #{dup[0]}); held-out data must be held out")
