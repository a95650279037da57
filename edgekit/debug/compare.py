"""Source layer vs artifact tensor: the numbers per layer, and the first layer whose error jumps.

Relative error (||artifact - source|| / ||source||) is what grows layer by layer; cosine, SNR and
max-abs are reported beside it. A layer "diverges" when its relative error is above what the
artifact's precision alone gives one layer (NOISE) and at least JUMP times the largest error of
the layers before it: rounding grows error gradually, a wrong weight or a mistranslated operator
makes it jump at the layer that has it.
"""
from __future__ import annotations

import numpy as np

# Relative error one layer of each precision shows on its own (measured on the built-in models:
# FP32 artifacts ~1e-6, FP16 ~1e-3, INT8 layers 1e-2 .. 1e-1).
NOISE = {"fp32": 1e-3, "fp16": 2e-2, "int8": 0.25}
JUMP = 10.0


def aligned(ref: np.ndarray, got: np.ndarray) -> np.ndarray | None:
    """`got` in the source's layout: equal shapes, or a channel-last 4-D/3-D tensor (LiteRT, TF.js)
    transposed back, or the same values with the batch axis squeezed; None when they cannot match."""
    got = np.asarray(got)
    if got.shape == ref.shape:
        return got
    if got.ndim == 4 and got.shape == (ref.shape[0], *ref.shape[2:], ref.shape[1]):
        return got.transpose(0, 3, 1, 2)
    if got.ndim == 3 and got.shape == (ref.shape[0], ref.shape[2], ref.shape[1]):
        return got.transpose(0, 2, 1)
    if got.size == ref.size and np.squeeze(got).shape == np.squeeze(ref).shape:
        return got.reshape(ref.shape)
    return None


def metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    a, b = np.asarray(ref, np.float64).ravel(), np.asarray(got, np.float64).ravel()
    diff = a - b
    na, nd = float(np.linalg.norm(a)), float(np.linalg.norm(diff))
    nb = float(np.linalg.norm(b))
    cos = float(a @ b / (na * nb)) if na and nb else (1.0 if na == nb else 0.0)
    return {"cosine": cos, "snr_db": float(10 * np.log10(na ** 2 / nd ** 2)) if nd else float("inf"),
            "max_abs": float(np.abs(diff).max()) if diff.size else 0.0,
            "rel_err": nd / na if na else (0.0 if not nd else float("inf")),
            "nonfinite": int(b.size - np.isfinite(b).sum())}


def compare(layers: list[dict], ref: dict, got: dict, precision: str) -> tuple[list[dict], dict | None]:
    """(one row per source layer the artifact exposes, in graph order; the first divergence or None).

    A jump must carry on: a wrong weight or operator spoils every layer after it, so a layer whose
    successor is back within the noise was matched to the wrong tensor (a name the toolchain reused,
    a batch norm folded into it), not broken. Such a row is marked `unconfirmed` and neither named
    nor counted in the error the next layers are measured against."""
    rows = []
    noise = NOISE.get(precision, NOISE["fp32"])
    for lay in layers:
        name = lay["name"]
        if name not in got:
            continue
        g = aligned(ref[name], got[name])
        if g is None:
            rows.append({**lay, "shape": list(ref[name].shape), "skipped": f"shape {list(np.shape(got[name]))} "
                         f"does not match the source's {list(ref[name].shape)}"})
            continue
        rows.append({**lay, "shape": list(ref[name].shape), **metrics(ref[name], g)})
    done = [r for r in rows if "rel_err" in r]
    worst_before, first = 0.0, None
    for i, row in enumerate(done):
        row["growth"] = row["rel_err"] / worst_before if worst_before else None
        jumped = row["nonfinite"] > 0 or (row["rel_err"] > noise
                                          and row["rel_err"] >= JUMP * max(worst_before, noise / JUMP))
        if jumped and i + 1 < len(done) and done[i + 1]["rel_err"] <= max(noise, JUMP * worst_before) \
                and not done[i + 1]["nonfinite"]:
            row["unconfirmed"] = (f"the next layer ({done[i + 1]['name']}) is back to relative error "
                                  f"{done[i + 1]['rel_err']:.3g}: this tensor is probably not this layer's")
            continue
        if first is None and jumped:
            first = row
        worst_before = max(worst_before, row["rel_err"])
    return rows, first


def where(layer: dict) -> str:
    """'conv2d_3 (features.3, aten.conv2d.default) at model.py:41 `x = self.conv(x)`'"""
    from ..findings import where as source_where

    what = ", ".join(filter(None, [layer.get("module"), layer.get("op")]))
    at = source_where(layer.get("source"))
    fused = "; ".join(f"{f['name']}" + (f" ({f['module']})" if f.get("module") else "")
                      for f in layer.get("fused") or [])
    return (f"{layer['name']}" + (f" ({what})" if what else "") + (f" fused with {fused}" if fused else "")
            + (f" at {at}" if at else ""))


def first_divergence_line(first: dict | None, rows: list[dict], precision: str) -> str:
    """The line `debug` ends with (the interface: it begins `first divergence:`)."""
    if first is not None:
        return (f"first divergence: {where(first)}: relative error {first['rel_err']:.3g} (cosine "
                f"{first['cosine']:.6f}), {_growth(first)} beyond what {precision} explains")
    done = [r for r in rows if "rel_err" in r]
    if not done:
        return "first divergence: unknown: no layer of the source could be matched in the artifact"
    worst = max(done, key=lambda r: r["rel_err"])
    return (f"first divergence: none: every matched layer ({len(done)}) is within what {precision} explains; "
            f"largest relative error {worst['rel_err']:.3g} at {where(worst)}")


def _growth(row: dict) -> str:
    g = row.get("growth")
    return "the first layer with error" if g is None else f"{g:.0f}x the layers before it"
