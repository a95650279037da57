"""The error-vs-depth curve of each traced artifact in one self-contained HTML page (plots inlined as
PNG, no network), with the first divergence marked and each layer's numbers in a table below."""
from __future__ import annotations

import html
from pathlib import Path


def curve_png(results: list[dict]) -> str:
    """One plot: relative error per matched layer (log scale, graph order), one line per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import png

    fig, ax = plt.subplots(figsize=(10, 4.2))
    for r in results:
        rows = [x for x in r.get("rows", []) if "rel_err" in x]
        ys = [max(x["rel_err"], 1e-9) for x in rows]
        (line,) = ax.plot(range(len(ys)), ys, marker=".", label=f"{r.get('label', r['artifact'])} ({r['precision']})")
        if r.get("first"):
            i = next(i for i, x in enumerate(rows) if x["name"] == r["first"]["name"])
            ax.annotate(f"first divergence: {rows[i]['name']}", (i, ys[i]), color=line.get_color(),
                        xytext=(8, 8), textcoords="offset points", fontsize=8)
            ax.plot([i], [ys[i]], "o", ms=9, mfc="none", color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("matched layer (graph order)")
    ax.set_ylabel("relative error vs the source model")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return png(fig)


def write_html(path: str, results: list[dict], title: str) -> None:
    from ..bundle import write_atomically

    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<img alt="relative error per layer" src="data:image/png;base64,{curve_png(results)}">']
    for r in results:
        parts.append(f"<h2>{html.escape(r['artifact'])} ({html.escape(r['runtime'])}, {r['precision']})</h2>"
                     f"<p>{html.escape(r['line'])}</p>" + ("" if r.get("error") else
                     f"<p>input: {html.escape(r['input'])}; {r['matched']} of {r['source_layers']} source layers "
                     "matched</p>"))
        head = "".join(f"<th>{h}</th>" for h in ("layer", "module / op", "source", "cosine", "SNR dB", "rel err"))
        body = []
        for x in r.get("rows", []):
            if "rel_err" not in x:
                continue
            src = x.get("source")
            at = f"{Path(src['file']).name}:{src['line']}" if src else ""
            snr = "exact" if x["snr_db"] is None else f"{x['snr_db']:.1f}"
            mark = ' style="background:#fdd"' if r.get("first") and x["name"] == r["first"]["name"] else ""
            body.append(f"<tr{mark}><td>{html.escape(x['name'])}</td><td>{html.escape(x.get('module') or x['op'])}</td>"
                        f"<td>{html.escape(at)}</td>"
                        f"<td>{x['cosine']:.6f}</td><td>{snr}</td>"
                        f"<td>{x['rel_err']:.2e}</td></tr>")
        parts.append(f"<table border=1 cellspacing=0 cellpadding=3><tr>{head}</tr>{''.join(body)}</table>")
    page = ("<!doctype html><meta charset=utf-8><title>edgekit debug</title>"
            "<body style='font-family:sans-serif;max-width:1100px'>" + "".join(parts) + "</body>")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(p, page)
