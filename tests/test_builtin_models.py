"""The real built-in models compile to verified artifacts (slow: real weights, tens of seconds)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import edgekit as run

pytestmark = [pytest.mark.onnxruntime]


@pytest.mark.slow
def test_minilm_cpu_verified_fp32(minilm_bundle):
    m = json.loads((minilm_bundle / "manifest.json").read_text())
    a = m["artifacts"][0]
    assert a["verification"]["status"] == "passed" and a["verification"]["samples"] >= 32
    assert a["verification"]["metrics"]["embedding"]["cosine"] >= 0.9999
    seq = [[1, "seq", 1, 128]]  # any length 1..128; the example (and opt) is 32 tokens
    assert a["inputs"] == [{"name": "input_ids", "shape": [1, 32], "dtype": "int64", "dynamic": seq},
                           {"name": "attention_mask", "shape": [1, 32], "dtype": "int64", "dynamic": seq}]
    assert hashlib.sha256((minilm_bundle / a["path"]).read_bytes()).hexdigest() == a["sha256"]
    assert a["converter"]["fusions"].get("attention", 0) == 6  # ORT's fused attention, one per layer


@pytest.mark.slow
def test_minilm_builtin_is_the_real_sentence_transformer():
    """Our module (BERT + mean pooling + normalize) equals the sentence-transformers pipeline."""
    import torch
    from sentence_transformers import SentenceTransformer

    from edgekit.builtin import minilm

    text = "Return a new sorted list from the items in iterable."
    enc = minilm.build()
    with torch.no_grad():
        ours = enc(*[torch.from_numpy(v) for v in minilm.tokenize(minilm.tokenizer(), text).values()]).numpy()[0]
    ref = SentenceTransformer(str(minilm.model_dir()), device="cpu").encode([text])[0]
    assert float(ours @ ref / np.linalg.norm(ours) / np.linalg.norm(ref)) > 0.99999


@pytest.mark.slow
def test_efficientnet_lite0_cpu_verified(build_dir):
    out = build_dir / "effnet-cpu"
    run("compile", "--model", "builtin:efficientnet-lite0", "--target", "cpu", "--out", out, check=True)
    m = json.loads((out / "manifest.json").read_text())
    v = m["artifacts"][0]["verification"]
    assert v["status"] == "passed" and v["samples"] == 200  # 10 boxes and their mirror images, each of 10 photos
    lg = v["metrics"]["logits"]
    assert lg["cosine"] >= 0.9999 and lg["top1_agreement"] == 1.0 and (lg["top1_agree"], lg["top1_n"]) == (200, 200)
    assert lg["top1_low95"] > 0.98 and lg["flips_decisive"] == lg["flips_near_tie"] == 0
    assert m["model"]["preprocessing"]["mean"] == [0.5, 0.5, 0.5]


@pytest.mark.slow
def test_efficientnet_recognises_real_photos():
    """The weights are real ImageNet weights: the cat photo is a cat, the coffee photo espresso."""
    import torch

    from edgekit.builtin import efficientnet_lite0 as eff
    from edgekit.builtin.data import crops, photo

    model = eff.build()
    got = {}
    for name in ("chelsea", "coffee"):
        x = eff.to_input(crops(photo(name), eff.SIZE, 1)[0])["image"]
        with torch.no_grad():
            got[name] = int(model(torch.from_numpy(x)).argmax())
    assert got["chelsea"] in (281, 282, 283, 284, 285)  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert got["coffee"] in (967, 968, 504)  # espresso, cup, coffee mug


def test_crops_are_distinct_even_for_square_photos():
    """A square photo's full-scale corner crops coincide; each crop must still be a different box
    (duplicates counted one crop several times in verification and calibration)."""
    from edgekit.builtin.data import crops, photo

    for name in ("astronaut", "coffee"):  # 512 x 512 and 400 x 600
        cs = crops(photo(name)[::4, ::4], 32, 6)
        assert len(cs) == 6
        assert all(not np.array_equal(a, b) for i, a in enumerate(cs) for b in cs[i + 1:])


def test_calibration_and_verification_never_overlap():
    from edgekit.builtin import data, digits

    calib, verify = data.split_by_hash(data.sentences())
    assert calib and verify and not set(calib) & set(verify)
    assert not set(data.CALIB_PHOTOS) & set(data.VERIFY_PHOTOS)
    tr, ca, te = (set(map(int, s)) for s in digits.split_indices())
    assert not (tr & ca) and not (tr & te) and not (ca & te)
    assert (len(tr), len(ca), len(te)) == (1200, 200, 397)
