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
    """Over the positions finite in both (a mask's -inf in the source and the artifact is agreement,
    not error); `nonfinite` counts only where the artifact alone is NaN/Inf. snr_db is None for
    identical tensors (infinite). The norm has a floor, so an all-zero source tensor is not infinitely off."""
    a, b = np.asarray(ref, np.float64).ravel(), np.asarray(got, np.float64).ravel()
    fa, fb = np.isfinite(a), np.isfinite(b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))  # the same inf, or NaN in both
    nonfinite = int(np.count_nonzero(~fb & ~same))
    both = fa & fb
    a, b = a[both], b[both]
    diff = a - b
    na, nb, nd = float(np.linalg.norm(a)), float(np.linalg.norm(b)), float(np.linalg.norm(diff))
    floor = 1e-6 * np.sqrt(max(a.size, 1))
    cos = float(a @ b / (na * nb)) if na and nb else (1.0 if nd <= floor else 0.0)
    return {"cosine": cos, "snr_db": float(10 * np.log10(max(na, floor) ** 2 / nd ** 2)) if nd else None,
            "max_abs": float(np.abs(diff).max()) if diff.size else 0.0, "rel_err": nd / max(na, floor),
            "nonfinite": nonfinite}


def _nearest(name: str, edges: dict, measured: dict) -> list[str]:
    """The closest layers along `edges` (producers or users) that have a measured error, passing through
    layers without one."""
    seen, todo, found = {name}, list(edges.get(name, ())), []
    while todo and len(seen) < 5000:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in measured:
            found.append(n)
        else:
            todo.extend(edges.get(n, ()))
    return found


def compare(layers: list[dict], ref: dict, got: dict, precision: str) -> tuple[list[dict], dict | None]:
    """(one row per source layer the artifact exposes, in graph order; the first divergence or None).

    A layer's error is measured against its own inputs' (the nearest measured layers that feed it), so
    rounding noise elsewhere in the network does not hide a jump here. A jump must carry on: a wrong
    weight or operator spoils the layers it feeds, so a layer whose nearest measured users are back to
    the level before it was matched to the wrong tensor (a name the toolchain reused, a folded norm),
    not broken: it is marked `unconfirmed`, never named, and not used as a baseline."""
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
    err = {r["name"]: r["rel_err"] for r in done}
    users = {lay["name"]: lay.get("users") or [] for lay in layers}
    producers: dict[str, list[str]] = {}
    for n, us in users.items():
        for u in us:
            producers.setdefault(u, []).append(n)
    graph = any(users.values())  # without edges (a reader that gave none): the layers before, in order
    trusted, worst_before, first = {}, 0.0, None
    for row in done:
        ups = _nearest(row["name"], producers, trusted) if graph else []
        base = max((trusted[u] for u in ups), default=0.0) if graph else worst_before
        row["growth"] = row["rel_err"] / base if base else None
        jumped = row["nonfinite"] > 0 or (row["rel_err"] > noise and row["rel_err"] >= JUMP * max(base, noise / JUMP))
        if jumped:
            downs = _nearest(row["name"], users, err) if graph else []
            after = max((err[d] for d in downs), default=None)
            if after is not None and after <= max(noise, 3 * base) and row["nonfinite"] == 0:
                row["unconfirmed"] = (f"the layers it feeds are back to relative error {after:.3g}: this tensor is "
                                      "probably not this layer's")
                continue
            first = first or row
        trusted[row["name"]] = row["rel_err"]
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
