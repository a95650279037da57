"""builtin:digits-small — a student for builtin:digits with a fifth of its parameters (7.7k vs 38k).

Without --weights it is trained on the digits train split with the labels alone (cached), the
baseline a distilled student must beat; `edgekit distill --teacher builtin:digits --student
builtin:digits-small` writes distilled weights to load with `--weights`.
"""
from __future__ import annotations

from ..sources.model import ModelSource
from . import cache_dir
from .digits import _train, source

ARCH_VERSION = 1


def build():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 24), nn.ReLU(), nn.Linear(24, 10),
    )


def load(weights: str | None = None) -> ModelSource:
    from ..sources.safety import load_state_dict

    path = weights or cache_dir() / f"digits-small-v{ARCH_VERSION}.pt"
    if weights is None and not path.exists():
        _train(path, build)
    model = build()
    model.load_state_dict(load_state_dict(path))
    return source(model.eval(), "digits-small")
