"""Samples on disk: a list of input dicts, their reference outputs and labels in one .npz
(`in:NAME`, `ref:NAME`, `labels`). Read with allow_pickle=False: a sample file never runs code.
numpy only, so the on-device self-test reads them too."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def save_samples(path: Path, inputs: list[dict], refs: list[dict] | None = None, labels=None) -> None:
    arrays = {f"in:{k}": np.stack([s[k] for s in inputs]) for k in inputs[0]} if inputs else {}
    if refs:
        arrays.update({f"ref:{k}": np.stack([r[k] for r in refs]) for k in refs[0]})
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    np.savez(path, **arrays)


def load_samples(path: Path):
    with np.load(path, allow_pickle=False) as z:
        ins = {k[3:]: z[k] for k in z.files if k.startswith("in:")}
        refs = {k[4:]: z[k] for k in z.files if k.startswith("ref:")}
        labels = z["labels"] if "labels" in z.files else None
    n = len(next(iter(ins.values()))) if ins else 0
    return ([{k: v[i] for k, v in ins.items()} for i in range(n)],
            [{k: v[i] for k, v in refs.items()} for i in range(n)] if refs else [], labels)
