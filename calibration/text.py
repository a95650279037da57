"""Calibration from a text file: one sample per non-empty line, tokenized with the model's tokenizer.

The model's `preprocessing` names the tokenizer (`tokenizer_json`: a Hugging Face `tokenizers`
tokenizer.json) and `max_length`; every line is padded/truncated to it, like the model's own
inputs. Token inputs are recognised by name: input_ids, attention_mask, token_type_ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelSourceError, ToolchainMissing

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def read_text(path: Path, example: dict, prep: dict, limit: int, seed: int) -> list[dict]:
    unknown = [n for n in example if n not in TOKEN_INPUTS]
    if "input_ids" not in example or unknown:
        raise ModelSourceError(f"a text file calibrates token models (inputs named {', '.join(TOKEN_INPUTS)}); "
                               f"this model takes {list(example)}", hint="give --calibration as .npy/.npz arrays")
    if not prep.get("tokenizer_json"):
        raise ModelSourceError("the model records no tokenizer (preprocessing['tokenizer_json']), so text cannot "
                               "be tokenized for it", hint="return preprocessing={'tokenizer_json': PATH, "
                                                           "'max_length': N} from your factory, or give .npz arrays")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ToolchainMissing("tokenizers is not installed (needed to tokenize calibration text)",
                               hint="pip install tokenizers") from None
    length = int(example["input_ids"].shape[-1])
    tok = Tokenizer.from_file(str(prep["tokenizer_json"]))
    tok.enable_padding(length=length)
    tok.enable_truncation(max_length=length)
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    except UnicodeDecodeError as e:
        raise ModelSourceError(f"{path}: not UTF-8 text ({e})") from None
    if not lines:
        raise ModelSourceError(f"{path}: no non-empty lines")
    if len(lines) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(lines), size=limit, replace=False))
        lines = [lines[i] for i in keep]
    out = []
    for line in lines:
        e = tok.encode(line)
        arrays = {"input_ids": e.ids, "attention_mask": e.attention_mask, "token_type_ids": e.type_ids}
        out.append({n: np.asarray([arrays[n]], dtype=example[n].dtype).reshape(example[n].shape) for n in example})
    return out
