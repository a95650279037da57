"""How often does the gate cry wolf, and how often does it catch a real slowdown? Measured here.

- False alarms: >= 20 A/A runs (two separate sessions on identical artifacts), for a synthetic
  20-layer MLP and for the digits bundle that our own CI gates.
- Detection: candidates with REAL extra work: the same MLP with 1, 2 or 4 extra identical layers
  (+5%, +10%, +20% of the compute); the gate's own median ratio over all runs says what the
  injected slowdown really was on this machine.
Every run goes through edgekit.gate.run_gate, the code path of `python -m edgekit gate`.

    .venv/bin/python benchmarks/gate_power.py [--runs 20] [--digits-reference ci/reference/digits-cpu]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def mlp_onnx(path: Path, layers: int, width: int = 512, batch: int = 32) -> Path:
    import torch

    torch.manual_seed(0)
    blocks = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    torch.onnx.export(torch.nn.Sequential(*blocks).eval(), (torch.randn(batch, width),), str(path), dynamo=True,
                      external_data=False)
    return path


def series(name: str, baseline: Path, candidate: Path, runs: int, cfg) -> dict:
    from edgekit.gate import run_gate

    flags, ratios, t0 = 0, [], time.perf_counter()
    for _ in range(runs):
        res = run_gate(str(baseline), str(candidate), cfg)
        flags += res.latency_regression
        ratios.append(res.attempts[0]["ratio"])
    r = {"name": name, "runs": runs, "flagged": flags, "rate": flags / runs, "median_ratio": float(np.median(ratios)),
         "ratio_range": (float(min(ratios)), float(max(ratios))), "seconds": time.perf_counter() - t0}
    print(f"{name:28s} flagged {flags:2d}/{runs}  ({100 * flags / runs:5.1f}%)  measured ratio median "
          f"{r['median_ratio']:.3f} [{r['ratio_range'][0]:.3f}-{r['ratio_range'][1]:.3f}]  {r['seconds']:.0f} s", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--digits-reference", default="ci/reference/digits-cpu")
    args = ap.parse_args()

    from edgekit.gate import GateConfig
    from edgekit.pipeline import compile_model

    cfg = GateConfig()  # the defaults users get: 20 blocks, 5% min effect, confirm rerun
    tmp = Path(tempfile.mkdtemp(prefix="gate-power-"))
    base_layers = 20
    base = mlp_onnx(tmp / "base.onnx", base_layers)
    twin = mlp_onnx(tmp / "twin.onnx", base_layers)  # a separate, identical artifact
    print(f"gate defaults: {cfg.blocks} blocks, min effect {cfg.min_effect:.0%}, confirm={cfg.confirm}; "
          f"{args.runs} runs per row\n")
    rows = [series("A/A mlp (identical)", base, twin, args.runs, cfg)]
    ref = Path(args.digits_reference)
    if ref.exists():
        fresh, _ = compile_model(None, "cpu", str(tmp / "digits-fresh"))
        rows.append(series("A/A digits (CI subject)", ref, fresh, args.runs, cfg))
    for extra, label in ((1, "+5%"), (2, "+10%"), (4, "+20%")):
        slow = mlp_onnx(tmp / f"slow{extra}.onnx", base_layers + extra)
        rows.append(series(f"slowdown {label} ({extra} extra layers)", base, slow, args.runs, cfg))
    print("\n| comparison | runs | flagged | rate | measured ratio (median) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['runs']} | {r['flagged']} | {100 * r['rate']:.0f}% | {r['median_ratio']:.3f} |")


if __name__ == "__main__":
    main()
