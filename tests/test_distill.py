"""`edgekit distill`: Hinton KD for a classifier, embedding distillation for an encoder, real training."""
from __future__ import annotations

import json

import pytest

from conftest import edgekit

pytestmark = [pytest.mark.onnxruntime]


@pytest.mark.slow
def test_digits_student_distilled_beats_labels_alone_and_compiles(tmp_path):
    """The issue's demonstration: a student with <= 1/4 of the teacher's parameters, distilled,
    within 1.5 points of the teacher and above the same student trained on labels alone
    (mean over 3 seeds, same data/optimizer/epochs per seed)."""
    out = tmp_path / "d"
    p = edgekit("distill", "--teacher", "builtin:digits", "--student", "builtin:digits-small", "--out", out,
                "--seeds", "3", "--epochs", "60", check=True)
    rep = json.loads((out / "report.json").read_text())
    t, s = rep["teacher"], rep["student"]
    assert s["params"] * 4 <= t["params"] and s["state_dict_bytes"] * 4 <= t["state_dict_bytes"]
    acc_t = t["held_out"]["accuracy"]
    kd, base = rep["summary"]["distilled"]["accuracy"], rep["summary"]["baseline"]["accuracy"]
    assert len(rep["runs"]) == 3 and rep["held_out"]["samples"] == 397
    assert kd["mean"] >= acc_t - 0.015, (kd, acc_t)
    assert kd["mean"] > base["mean"], (kd, base)
    assert kd["min"] <= kd["mean"] <= kd["max"]
    assert "spread over seeds" in p.stdout and "compile it:" in p.stdout
    # the distilled weights compile and verify like any model (and the student's accuracy shows)
    b = tmp_path / "b"
    edgekit("compile", "--model", "builtin:digits-small", "--weights", out / "student.pt", "--target", "cpu",
            "--out", b, check=True)
    m = json.loads((b / "manifest.json").read_text())
    assert m["model"]["name"] == "digits-small" and m["artifacts"][0]["verification"]["status"] == "passed"


@pytest.mark.slow
def test_minilm_three_layer_student_moves_toward_the_teacher(tmp_path):
    """A short run on a text file of docstring sentences (outside the held-out split): the 3-layer
    student initialized from teacher layers 0/4/5 (held-out cosine 0.74 untrained) gets clearly
    closer to the teacher's embeddings. (The full demonstration, 0.90+ cosine, takes minutes:
    docs/distillation.md; the padding trim that makes it affordable is checked below.)"""
    from edgekit.builtin.data import sentences, split_by_hash

    calib, _ = split_by_hash(sentences())
    (tmp_path / "t.txt").write_text("\n".join(calib[:256]), encoding="utf-8")
    out = tmp_path / "m"
    edgekit("distill", "--teacher", "builtin:minilm", "--student", "builtin:minilm-l3", "--data", tmp_path / "t.txt",
            "--out", out, "--seeds", "1", "--steps", "40", check=True)
    rep = json.loads((out / "report.json").read_text())
    run = rep["runs"][0]
    assert rep["transfer_data"]["samples"] == 256
    assert run["distilled"]["cosine_mean"] >= run["baseline"]["cosine_mean"] + 0.1, run
    assert rep["student"]["params"] < 0.8 * rep["teacher"]["params"]


def test_distill_refuses_bad_inputs(tmp_path):
    p = edgekit("distill", "--teacher", "builtin:digits", "--student", "builtin:minilm-l3", "--out", tmp_path)
    assert p.returncode == 2 and "must match" in p.stderr
    p = edgekit("distill", "--teacher", "builtin:digitz", "--student", "builtin:digits-small")
    assert p.returncode == 2 and "did you mean" in p.stderr
    p = edgekit("distill", "--teacher", "builtin:minilm", "--student", "builtin:minilm-l3", "--steps", "0")
    assert p.returncode == 2 and "--steps must be at least 1" in p.stderr and "Traceback" not in p.stderr
    p = edgekit("compile", "--model", "builtin:digits", "--weights", tmp_path / "w.pt", "--target", "cpu")
    assert p.returncode == 2 and "brings its own weights" in p.stderr


def test_padding_is_trimmed_only_when_the_model_gives_the_same_outputs():
    """distill._trimmer cuts token batches to their longest sentence (MiniLM trains ~2x faster), but
    only for a model whose outputs do not change: a fixed-length model keeps its padded inputs."""
    import torch

    from edgekit.distill import _trimmer

    class Pooled(torch.nn.Module):  # masked mean pooling: padding changes nothing
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(100, 8)

        def forward(self, input_ids, attention_mask):
            m = attention_mask.unsqueeze(-1).float()
            return (self.emb(input_ids) * m).sum(1) / m.sum(1)

    class FixedLength(Pooled):  # reads every position: needs all 16
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(16 * 8, 4)

        def forward(self, input_ids, attention_mask):
            return self.head(self.emb(input_ids).flatten(1))

    class Unmasked(Pooled):  # padding tokens count: cut inputs change the output
        def forward(self, input_ids, attention_mask):
            return self.emb(input_ids).mean(1)

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (10, 16), generator=g)
    mask = (torch.arange(16) < torch.randint(3, 9, (10, 1), generator=g)).long()
    ids = ids * mask
    x, names = [ids, mask], ["input_ids", "attention_mask"]
    trim = _trimmer(Pooled(), x, names)
    assert trim is not None and trim(x)[0].shape[1] == int(mask.sum(1).max()) < 16
    assert _trimmer(FixedLength(), x, names) is None
    assert _trimmer(Unmasked(), x, names) is None
    assert _trimmer(Pooled(), x, ["ids", "mask"]) is None  # no attention_mask input: nothing to go by
