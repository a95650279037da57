"""Plain-text tables for the terminal (no dependency)."""
from __future__ import annotations


def render(headers: list[str], rows: list[list], title: str | None = None) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    out = [title] if title else []
    out.append("  ".join(h.ljust(w) for h, w in zip(cells[0], widths)))
    out.append(line)
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells[1:]]
    return "\n".join(out)


def size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return str(n)


def verification_cell(v) -> str:
    if v.status != "passed" and not v.metrics:
        return v.status
    m = next(iter(v.metrics.values()), {})
    # not-run with metrics: the prepared graph was checked on another runtime (e.g. TensorRT's ONNX on ORT)
    status = v.status + (f" on {v.where}" if v.status != "not-run" and v.where not in ("host-runtime", "") else "")
    parts = ["not-run (graph checked: " if v.status == "not-run" else status, f"cos {m.get('cosine', float('nan')):.6f}"]
    if "top1_agreement" in m:
        parts.append(f"top1 {100 * m['top1_agreement']:.1f}%")
    return (", ".join(parts).replace(": , ", ": ") + (")" if v.status == "not-run" else "")
            + (" *" if getattr(v, "caveats", None) else ""))  # * : a caveat, listed under the table
