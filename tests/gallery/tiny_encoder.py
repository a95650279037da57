"""A tiny sentence encoder with what real ones have: int64 token ids + attention mask, embeddings,
self-attention, LayerNorm, GELU, masked mean pooling and a final L2 normalize (ReduceL2 in ONNX).
Random weights (seeded): small enough that TF.js/Core ML conversions run in seconds in tests."""
import numpy as np
import torch
import torch.nn.functional as F

VOCAB, SEQ, DIM = 100, 16, 32


class TinyEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, DIM)
        self.pos = torch.nn.Parameter(torch.randn(1, SEQ, DIM) * 0.1)
        self.qkv = torch.nn.Linear(DIM, 3 * DIM)
        self.norm1 = torch.nn.LayerNorm(DIM)
        self.ff = torch.nn.Sequential(torch.nn.Linear(DIM, 2 * DIM), torch.nn.GELU(), torch.nn.Linear(2 * DIM, DIM))
        self.norm2 = torch.nn.LayerNorm(DIM)

    def forward(self, input_ids, attention_mask):
        x = self.emb(input_ids) + self.pos
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        bias = (1.0 - attention_mask[:, None, :].to(x.dtype)) * -1e4
        att = torch.softmax(q @ k.transpose(1, 2) / DIM ** 0.5 + bias, dim=-1)
        x = self.norm1(x + att @ v)
        x = self.norm2(x + self.ff(x))
        m = attention_mask[:, :, None].to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return F.normalize(pooled, dim=-1)


def _batch(rng, n):
    out = []
    for _ in range(n):
        length = int(rng.integers(4, SEQ + 1))
        ids = np.zeros((1, SEQ), np.int64)
        ids[0, :length] = rng.integers(1, VOCAB, length)
        mask = np.zeros((1, SEQ), np.int64)
        mask[0, :length] = 1
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def make():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    return {"model": TinyEncoder().eval(), "example_inputs": _batch(rng, 1)[0],
            "input_names": ["input_ids", "attention_mask"], "output_names": ["embedding"], "task": "embedding",
            "verification_inputs": _batch(rng, 24), "calibration_inputs": _batch(rng, 16)}
