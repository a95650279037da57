"""builtin:minilm-l3 — a 3-layer student of builtin:minilm, initialized from its layers 0, 2 and 4
(the embeddings and pooling unchanged), as DistilBERT initialized from every other teacher layer.

Without --weights it is that initialization, undistilled; `edgekit distill --teacher builtin:minilm
--student builtin:minilm-l3` writes distilled weights to load with `--weights`.
"""
from __future__ import annotations

from ..sources.model import ModelSource
from .minilm import source

KEEP_LAYERS = (0, 2, 4)


def build():
    import torch

    from .minilm import build as teacher

    model = teacher()
    layers = model.bert.encoder.layer
    model.bert.encoder.layer = torch.nn.ModuleList([layers[i] for i in KEEP_LAYERS])
    model.bert.config.num_hidden_layers = len(KEEP_LAYERS)
    return model.eval()


def load(weights: str | None = None) -> ModelSource:
    model = build()
    if weights:
        from ..sources.safety import load_state_dict

        model.load_state_dict(load_state_dict(weights))
    return source(model.eval(), "minilm-l3")
