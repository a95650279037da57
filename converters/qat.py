"""Quantization-aware fine-tuning (`compile --qat`) of the PT2E INT8 graph (LiteRT, ExecuTorch).

It starts from the post-training result, not from scratch: after calibration, each observer of
prepare_pt2e's graph becomes a fake quantizer with the observer's scale and zero point, frozen
(gradients pass straight through the rounding, and stop outside the range), and the graph's float
weights and biases (BatchNorm already folded into them) are fine-tuned so that its outputs match
the FP32 model's on unlabeled samples: the teacher is the FP32 model itself, so no labels are
needed. convert_pt2e then makes the INT8 graph as it does after calibration, and held-out
verification compares it with the original FP32 model, as every artifact is compared.

Why not prepare_qat_pt2e: its graph keeps each BatchNorm after its convolution until convert, so
the convolution -> ReLU6 pairs that pt2e._quantize_after_clamp re-annotates are convolution ->
BatchNorm -> ReLU6 there, and ReLU6's output goes back to sharing the pre-activation's INT8 grid.
Untrained, its fake-quantized EfficientNet-Lite0 agreed with FP32 on 121 of 200 held-out crops,
against 180 for the post-training graph. Its moving-average observers also keep moving on every
forward pass, evaluation included.

Why mixup: the calibration set is small (EfficientNet-Lite0's: 60 crops of 10 photos) and plain
fine-tuning on it overfits: its error on those crops fell twentyfold while the held-out logit error
fell from 0.19 to 0.16 (std). Training on random blends of two samples, x = (1 - a) x_i + a x_j with
a ~ U(0, 0.5), the teacher run on each blend, gave 0.14 and more held-out agreement (see
docs/quantization.md for the measured table). Integer inputs (token ids) cannot be blended: such
models train on the samples as they are.

Why not distill.py's training loop: it switches the student between train and eval mode, which an
exported graph refuses, and it trains on fixed tensors, while these blends are made per step.
"""
from __future__ import annotations

import sys
import time

STEPS = 200  # EfficientNet-Lite0, 2-core EPYC: ~1.3 s a step; 300 steps were no better on held-out crops (190 vs 191/200)
BATCH = 8
LEARNING_RATE = 1e-5  # Adam; 1e-4 drifted from the teacher on held-out crops while fitting the blends
MIX_MAX = 0.5
SECONDS = 900  # on a big model: stop early and say so; what was trained so far is kept
# Fewer samples than this (a model with no calibration set trains on its one example input) would
# teach the graph those samples alone: it is left post-training, and the record says why.
MIN_SAMPLES = 8


def freeze_observers_as_fake_quant(prepared) -> int:
    """In place: every observer module of a prepared PT2E graph becomes a FakeQuantize holding that
    observer (so convert_pt2e reads the same qparams) with the observer switched off. An observer
    shared by several edges (a shared quantization spec) stays one module. Returns how many."""
    from torchao.quantization.pt2e import FakeQuantize, ObserverBase

    made: dict[int, object] = {}
    for name, mod in list(prepared._modules.items()):  # named_children() would skip a shared one's other names
        if not isinstance(mod, ObserverBase):
            continue
        if id(mod) not in made:
            extra = {"ch_axis": mod.ch_axis} if hasattr(mod, "ch_axis") else {}
            fq = FakeQuantize(observer=type(mod), quant_min=mod.quant_min, quant_max=mod.quant_max,
                              dtype=mod.dtype, qscheme=mod.qscheme, **extra)
            fq.activation_post_process = mod
            scale, zero_point = mod.calculate_qparams()
            fq.scale.resize_(scale.shape).copy_(scale)
            fq.zero_point.resize_(zero_point.shape).copy_(zero_point)
            fq.disable_observer()
            made[id(mod)] = fq
        setattr(prepared, name, made[id(mod)])
    prepared.recompile()
    return len(made)


def _flat(outputs):
    import torch

    from ..runtimes.base import output_list

    return torch.cat([t.float().reshape(t.shape[0] if t.dim() else 1, -1) for t in output_list(outputs)], dim=1)


def finetune(prepared, teacher, samples: list[tuple], steps: int = STEPS, budget_s: float = SECONDS,
             seed: int = 0) -> dict:
    """Fine-tune a calibrated prepared PT2E graph (in place) to reproduce `teacher` (the FP32 module)
    on blends of `samples` (tuples of batch-1 tensors, the graph's positional inputs). The graph is
    exported at batch 1, so each step accumulates the gradients of BATCH samples. -> the record."""
    import torch

    if len(samples) < MIN_SAMPLES:
        return {"steps": 0, "of": steps, "skipped": f"only {len(samples)} calibration sample(s), fewer than "
                f"{MIN_SAMPLES}: fine-tuning would fit them alone; give --calibration with representative inputs"}
    t0 = time.perf_counter()
    fake_quants = freeze_observers_as_fake_quant(prepared)
    params = [p for p in prepared.parameters() if p.dtype.is_floating_point]
    for p in params:
        p.requires_grad_(True)
    blend = all(t.dtype.is_floating_point for s in samples for t in s)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    losses: list[float] = []
    done = 0
    for step in range(steps):
        if time.perf_counter() - t0 > budget_s:
            break
        optimizer.zero_grad()
        total = 0.0
        for _ in range(BATCH):
            i, j = (int(k) for k in torch.randint(0, len(samples), (2,), generator=g))
            a = float(torch.rand((), generator=g)) * MIX_MAX if blend else 0.0
            x = tuple((1 - a) * xi + a * xj for xi, xj in zip(samples[i], samples[j])) if blend else samples[i]
            with torch.no_grad():
                target = _flat(teacher(*x))
            loss = torch.nn.functional.mse_loss(_flat(prepared(*x)), target) / BATCH
            loss.backward()
            total += float(loss.detach())
        optimizer.step()
        schedule.step()
        losses.append(total)
        done += 1
        if done % 50 == 0:  # the step's log (logs/build-ID.log) shows it is moving
            print(f"qat: step {done}/{steps}, loss {total:.6g}, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
    for p in params:
        p.requires_grad_(False)
    record = {"steps": done, "of": steps, "batch": BATCH, "learning_rate": LEARNING_RATE,
              "fake_quantizers": fake_quants, "seconds": round(time.perf_counter() - t0, 1),
              "data": (f"{len(samples)} calibration samples, blended in pairs (mixup, a <= {MIX_MAX})" if blend
                       else f"{len(samples)} calibration samples (integer inputs: not blended)"),
              "loss": "MSE to the FP32 model's outputs (the teacher; no labels)",
              # One step's loss is 8 random blends: means over the first and last steps say where it went.
              "loss_window": (k := max(1, min(10, done // 4))),
              "loss_start": round(sum(losses[:k]) / k, 6) if losses else None,
              "loss_end": round(sum(losses[-k:]) / k, 6) if losses else None,
              "note": "trained on the calibration samples: its calibration cosine is optimistic; held-out "
                      "verification against the original FP32 model decides"}
    if done < steps:
        record["stopped"] = f"time budget of {budget_s:.0f} s after {done} of {steps} steps"
    return record

