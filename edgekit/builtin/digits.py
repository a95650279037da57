"""builtin:digits — a small CNN trained at first use on scikit-learn's 8x8 digits, cached.

Splits are fixed (seeded): train 1,200 / calibration 200 / held-out test 397. Verification runs on
the held-out test split, whose labels also give the model's real accuracy.
"""
from __future__ import annotations

import os

import numpy as np

from ..sources.model import ModelSource
from . import cache_dir

ARCH_VERSION = 1  # bump when the architecture or training recipe changes: invalidates the cache
MEAN, SCALE = 0.0, 16.0  # pixel values 0..16 -> 0..1


def build():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def split_indices(n: int = 1797):
    """Fixed, disjoint index sets: train, calibration, held-out test."""
    order = np.random.default_rng(0).permutation(n)
    return order[:1200], order[1200:1400], order[1400:]


def splits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = ((d.images.astype(np.float32) - MEAN) / SCALE)[:, None]  # [N,1,8,8]
    y = d.target.astype(np.int64)
    tr, ca, te = split_indices(len(y))
    return (x[tr], y[tr]), (x[ca], y[ca]), (x[te], y[te])


def _train(path, build_fn=build):
    import torch

    (xt, yt), _, _ = splits()
    # One thread: batches of 64 tiny images gain nothing from more, and on a busy 2-core machine
    # two threads made training 10x slower (95 s vs 7.5 s); it also makes the weights the same
    # on every machine, whatever its core count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _fit(path, build_fn, xt, yt)
    finally:
        torch.set_num_threads(threads)


def _fit(path, build_fn, xt, yt):
    import torch

    torch.manual_seed(0)
    model = build_fn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt_t, yt_t = torch.from_numpy(xt), torch.from_numpy(yt)
    g = torch.Generator().manual_seed(0)
    for _epoch in range(40):
        perm = torch.randperm(len(yt_t), generator=g)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt_t[idx]), yt_t[idx]).backward()
            opt.step()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)  # atomic: concurrent first uses never read a half-written file


def load() -> ModelSource:

    from ..sources.safety import load_state_dict

    path = cache_dir() / f"digits-cnn-v{ARCH_VERSION}.pt"
    if not path.exists():
        _train(path)
    model = build()
    model.load_state_dict(load_state_dict(path))
    return source(model.eval(), "digits")


def source(model, name: str) -> ModelSource:
    """A digits classifier (the built-in or a student of it) with the digits data splits."""
    from ..sources.factory import module_sha256

    _, (xc, _yc), (xv, yv) = splits()
    return ModelSource(
        name=name, spec=f"builtin:{name}", kind="torch", sha256=module_sha256(model), module=model,
        example={"image": np.ascontiguousarray(xc[:1])}, output_names=["logits"], task="classification",
        labels=[str(i) for i in range(10)],
        preprocessing={"layout": "NCHW", "size": [8, 8], "channels": 1, "scale": 1 / SCALE, "mean": [MEAN],
                       "std": [1.0], "pixel_max": 16, "source": "sklearn.datasets.load_digits pixel values 0..16"},
        verify_inputs=[{"image": np.ascontiguousarray(xv[i:i + 1])} for i in range(len(xv))],
        verify_labels=yv, verify_data="digits held-out test split (397)",
        calib_inputs=[{"image": np.ascontiguousarray(xc[i:i + 1])} for i in range(len(xc))],
    )
