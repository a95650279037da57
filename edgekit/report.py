"""`edgekit report [BUNDLE...] [--sweep SWEEP.json] [--history [DB]] --html FILE`: one self-contained page.

Bundles are benchmarked here; a sweep's results (its sweep.json) and the history database's series
(with their change points) are reported as recorded, without re-measuring.

Every usable artifact of every bundle is benchmarked here (one run each, with the per-operator
profile where the runtime has one); the bench JSON is written next to the page and every number in
the page is formatted from it. Plots are matplotlib PNGs inlined as data: URIs (no CDN, no
network): latency distributions, size vs latency vs accuracy with each model's Pareto front,
per-operator breakdown, and achieved GFLOP/s against this machine's GEMM peak. A tiny script
marks on <body> how many plots the browser actually decoded (the Chromium test reads it).
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from . import history
from .plots import png as _png
from .table import size


def _label(row: dict) -> str:
    return f"{row['model']}/{row['target']}: {row['artifact']}"


def _quality(a) -> tuple[str, float | None]:
    """The artifact's accuracy when labels exist, else its worst output cosine vs the reference."""
    v = a.verification
    if v.accuracy is not None:
        return "accuracy", v.accuracy
    cos = [m.get("cosine") for m in (v.metrics or {}).values() if m.get("cosine") is not None]
    return "cosine", (min(cos) if cos else None)


def _agreement(v) -> str:
    """", top-1 47/48 (95% CI 89.1-99.6%), 1 near-tie flip": a classifier's agreement as counts."""
    m = next((m for m in (v.metrics or {}).values() if "top1_n" in m), None)
    if not m:
        return ""
    flips = [f"{m[k]} {w} flip{'s' * (m[k] != 1)}" for k, w in (("flips_near_tie", "near-tie"),
                                                                  ("flips_decisive", "decisive")) if m[k]]
    return (f", top-1 {m['top1_agree']}/{m['top1_n']} (95% CI {100 * m['top1_low95']:.1f}-"
            f"{100 * m['top1_high95']:.1f}%)" + "".join(f", {f}" for f in flips))


def pareto(points: list[tuple[float, float, float]]) -> list[bool]:
    """Non-dominated points for (latency min, size min, quality max)."""
    flags = []
    for i, (l, s, q) in enumerate(points):
        dominated = any(l2 <= l and s2 <= s and q2 >= q and (l2, s2, q2) != (l, s, q)
                        for j, (l2, s2, q2) in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def _rows(m, label: str, bench: dict, bench_failed: dict) -> tuple[list[dict], list[dict]]:
    """(benchmarked rows, not-run rows) for one bundle's manifest and its bench results by artifact."""
    model, target = m.model["name"], m.target["name"]
    distilled = None
    if m.model.get("distillation"):  # compile --distill-from: one line under the table
        from .distill import describe

        distilled = describe(m.model["distillation"])
    rows, not_run = [], []
    for a in m.artifacts:
        kind, q = _quality(a)
        row = {"bundle": label, "model": model, "model_sha256": m.model.get("sha256"), "target": target,
               "artifact": a.id, "role": a.role, "runtime": a.runtime, "precision": a.precision,
               "size_bytes": a.size_bytes, "verification": a.verification.status + _agreement(a.verification),
               "reason": a.verification.reason, "quality_kind": kind, "quality": q,
               "toolchain": a.toolchain, "bench": bench.get(a.id), "distillation": distilled}
        if a.id in bench_failed:
            row["verification"], row["reason"] = "not benchmarked", f"bench failed: {bench_failed[a.id]}"
        (rows if a.id in bench else not_run).append(row)
    for f in m.failed_candidates:
        not_run.append({"bundle": label, "model": model, "target": target, "artifact": f["id"],
                        "verification": "not built", "reason": f"{f.get('stage', '')}: {f['error']}"})
    return rows, not_run


def collect(bundles: list[Path], bench_args) -> tuple[list[dict], list[dict], list[dict]]:
    """(rows per usable artifact with its bench result, rows for artifacts/candidates not run, bench results)."""
    from .bundle import open_bundle
    from .bench import bench_all, options_from
    from .errors import EdgekitError

    rows, not_run, results = [], [], []
    for b in bundles:
        m = open_bundle(b)
        bench, bench_failed = {}, {}
        for aid in [a.id for a in m.usable()]:  # one artifact that cannot run here does not sink the report
            try:
                bench[aid] = bench_all(b, [aid], bench_args.threads, **options_from(bench_args))[0]
            except EdgekitError as e:
                bench_failed[aid] = e.message
        for r in bench.values():
            r["bundle"] = str(b)
        results += bench.values()
        r, n = _rows(m, str(b), bench, bench_failed)
        rows, not_run = rows + r, not_run + n
    return rows, not_run, results


def collect_sweep(path: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """The same rows from a finished sweep (its sweep.json): nothing is re-measured; a cell that
    failed before it had a bundle is one not-run row with its error."""
    from .errors import UsageError
    from .manifest import Manifest

    try:
        cells = json.loads(Path(path).read_text())["cells"]
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"--sweep {path}: not a sweep.json written by `edgekit sweep` ({e})") from None
    rows, not_run, results = [], [], []
    for c in cells:
        cell = c["cell"]
        if not c.get("manifest"):
            not_run.append({"bundle": "", "model": cell["model"], "target": cell["target"],
                            "artifact": f"({cell['precision']}, {cell['device']})", "verification": "cell failed",
                            "reason": c.get("error") or ""})
            continue
        bench = {b["artifact"]: {**b, "bundle": c.get("bundle")} for b in c.get("bench") or [] if b.get("latency_ms")}
        results += bench.values()
        r, n = _rows(Manifest.from_dict(c["manifest"]), c.get("bundle") or "", bench, {})
        rows, not_run = rows + r, not_run + n
    return rows, not_run, results


def _plots(rows: list[dict]) -> dict[str, str]:
    from . import deps

    matplotlib = deps.require("matplotlib", "the plots of `edgekit report`")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    # 1. latency distributions (results that kept every timed run; a sweep keeps medians only)
    dist = [r for r in rows if r["bench"].get("samples_ms")]
    if dist:
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(dist) + 1.5))
        ax.boxplot([r["bench"]["samples_ms"] for r in dist], vert=False, showfliers=False)
        ax.set_yticks(range(1, len(dist) + 1), [_label(r) for r in dist], fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("latency per run, ms (log scale; whiskers 1.5 IQR, outliers hidden)")
        ax.set_title("Latency distribution per artifact")
        out["latency"] = _png(fig)
    if not rows:
        return out
    # 2. size vs latency, colour = quality, Pareto front per model ringed
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for model in dict.fromkeys(r["model_sha256"] for r in rows):
        group = [r for r in rows if r["model_sha256"] == model]
        pts = [(r["bench"]["latency_ms"]["p50"], r["size_bytes"], r["quality"] if r["quality"] is not None else 0.0)
               for r in group]
        front = pareto(pts)
        for r, (lat, sz, q), on in zip(group, pts, front):
            r["pareto"] = on
            sc = ax.scatter(lat, sz / 1e6, c=[q], cmap="viridis", vmin=0.9, vmax=1.0, s=70,
                            edgecolors="red" if on else "none", linewidths=2)
            ax.annotate(_label(r), (lat, sz / 1e6), fontsize=7, xytext=(4, 4), textcoords="offset points")
    fig.colorbar(sc, ax=ax, label="accuracy (labelled data) or output cosine vs reference")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("p50 latency, ms")
    ax.set_ylabel("size, MB")
    ax.set_title("Size vs latency vs accuracy (red ring: on its model's Pareto front)")
    out["pareto"] = _png(fig)
    # 3. per-operator breakdown
    prof = [r for r in rows if r["bench"].get("profile")]
    if prof:
        fig, ax = plt.subplots(figsize=(9, 0.55 * len(prof) + 1.8))
        for i, r in enumerate(prof):
            left = 0.0
            ops = r["bench"]["profile"]["ops"]
            for j, o in enumerate(ops[:6]):
                ax.barh(i, o["ms_per_run"], left=left, color=plt.cm.tab10(j))
                if o["ms_per_run"] > 0.06 * r["bench"]["profile"]["ops_ms_per_run"]:
                    ax.text(left + o["ms_per_run"] / 2, i, o["op"].split(" (")[0][:14], ha="center", va="center",
                            fontsize=6, color="white")
                left += o["ms_per_run"]
            other = sum(o["ms_per_run"] for o in ops[6:])
            ax.barh(i, other, left=left, color="lightgrey")
        ax.set_yticks(range(len(prof)), [_label(r) for r in prof], fontsize=8)
        ax.set_xlabel("ms per run (top 6 operators, grey: the rest)")
        ax.set_title("Per-operator time (runtime profilers)")
        out["ops"] = _png(fig)
    # 4. roofline: achieved GFLOP/s vs arithmetic intensity, under the measured peak
    roof = [r for r in rows if r["bench"].get("roofline")]
    if roof:
        fig, ax = plt.subplots(figsize=(9, 5))
        peak = roof[0]["bench"]["roofline"]["peak_gflops_1thread"] * roof[0]["bench"]["roofline"]["threads"]
        ax.axhline(peak, color="black", linestyle="--", label=f"FP32 GEMM peak, {peak:.0f} GFLOP/s")
        for r in roof:
            rf = r["bench"]["roofline"]
            ax.scatter(rf["arithmetic_intensity"] or 1.0, rf["gflops_per_s"], s=50)
            ax.annotate(f"{_label(r)} ({rf['pct_of_peak']:.1f}%)", (rf["arithmetic_intensity"] or 1.0,
                        rf["gflops_per_s"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity, FLOP/byte (model graph)")
        ax.set_ylabel("achieved GFLOP/s at p50")
        ax.legend()
        ax.set_title("Roofline: achieved vs peak")
        out["roofline"] = _png(fig)
    return out


def _trend_plot(series: list[dict]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for i, sr in enumerate(series):
        ys = [r["p50_ms"] for r in sr["runs"]]
        color = plt.cm.tab10(i % 10)
        ax.plot(range(1, len(ys) + 1), ys, marker="o", markersize=3, color=color,
                label=f"{sr['model']}/{sr['target']}: {sr['artifact']} ({sr['device']})")
        cp = sr["change_point"]
        if cp:
            ax.axvline(cp["index"] + 0.5, color=color, linestyle=":")
            ax.annotate(f"x{cp['ratio']:.2f}", (cp["index"] + 0.5, max(ys)), fontsize=7, color=color)
    ax.set_yscale("log")
    ax.set_xlabel("run (oldest first)")
    ax.set_ylabel("p50 latency, ms")
    ax.set_title("History: median latency per run (dotted: detected change point)")
    ax.legend(fontsize=7)
    return _png(fig)


def _cell(v, fmt="{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def _table_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        b, rf = r["bench"], r["bench"].get("roofline") or {}
        out.append([r["model"], r["target"], r["artifact"], r["role"], r["runtime"], r["precision"],
                    size(r["size_bytes"]), _cell(b["latency_ms"]["p50"]), _cell(b["latency_ms"]["p90"]),
                    _cell(rf.get("gflops_per_s"), "{:.2f}"), _cell(rf.get("pct_of_peak"), "{:.1f}"),
                    f"{r['quality_kind']} {_cell(r['quality'], '{:.4f}')}", r["verification"],
                    "yes" if r.get("pareto") else ""])
    return out


HEAD = ["model", "target", "artifact", "role", "runtime", "precision", "size", "p50 ms", "p90 ms", "GFLOP/s",
        "% peak", "quality", "verification", "Pareto"]


def _distilled(rows: list[dict]) -> list[str]:
    """One line per bundle compiled with --distill-from."""
    return list(dict.fromkeys(f"{r['bundle']}: {r['distillation']}" for r in rows if r.get("distillation")))


def _layer_traces(bundles: list[Path]) -> list[dict]:
    """Every artifact `edgekit debug` reads here, traced against its source model (report --layers)."""
    from .bundle import open_bundle
    from .debug.run import trace_bundle, traceable

    out = []
    for b in bundles:
        m = open_bundle(b)
        for t in trace_bundle(b, traceable(m)[0]):
            out.append({**t, "label": f"{m.model['name']}/{m.target['name']}: {t['artifact']}"})
    return out


def render_html(rows, not_run, results, plots, series=(), traces=()) -> str:
    e = html.escape
    env = results[0]["env"] if results else {}
    body = [f"<h1>edgekit report</h1><p>{len(rows)} artifacts benchmarked on {e(str(env.get('cpu', {}).get('model')))}"
            f", {results[0]['threads'] if results else '-'} thread(s); every number below comes from the bench JSON "
            "written with this page.</p>"]
    if series:
        body.append("<h2>History</h2><table id='history'><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in history.TREND_HEAD)
                    + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                                                       for r in history.trend_rows(series)) + "</tbody></table>")
    body.append('<table id="artifacts"><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in HEAD) + "</tr></thead><tbody>")
    for r, cells in zip(rows, _table_rows(rows)):
        body.append(f'<tr data-artifact="{e(r["artifact"])}" data-bundle="{e(r["bundle"])}" '
                    f'data-p50="{r["bench"]["latency_ms"]["p50"]!r}">' + "".join(f"<td>{e(c)}</td>" for c in cells)
                    + "</tr>")
    body.append("</tbody></table>")
    body += [f"<p class='distillation'>{e(line)}</p>" for line in _distilled(rows)]
    titles = {"trend": "Latency over time", "latency": "Latency distributions", "pareto": "Size, latency, accuracy", "ops": "Per-operator time",
              "roofline": "Roofline", "layers": "Error vs depth (edgekit debug)"}
    for key, png in plots.items():
        body.append(f'<h2>{titles[key]}</h2><img class="plot" id="plot-{key}" alt="{titles[key]}" '
                    f'src="data:image/png;base64,{png}">')
        if key == "layers":
            body += [f"<p class='first-divergence'>{e(t['label'])}: {e(t['line'])}</p>" for t in traces]
    body.append("<h2>Verification: not run or failed</h2><table id='not-run'><thead><tr><th>model</th><th>target</th>"
                "<th>artifact</th><th>status</th><th>why</th></tr></thead><tbody>")
    for r in not_run:
        status = r["verification"] if r["verification"] != "passed" else "not benchmarked"
        body.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in (r["model"], r["target"], r["artifact"],
                                                                        status, r.get("reason") or "")) + "</tr>")
    body.append("</tbody></table><h2>Environment and toolchains</h2><pre>"
                + e(json.dumps({"environment": env, "toolchains": {_label(r): r["toolchain"] for r in rows}},
                               indent=1)) + "</pre>")
    script = ("<script>window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);"
              "document.body.dataset.plotsExpected=i.length;document.body.dataset.plotsRendered="
              "i.filter(function(x){return x.complete&&x.naturalWidth>0;}).length;"
              "document.body.dataset.tableRows=document.querySelectorAll('#artifacts tbody tr').length;});</script>")
    style = ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}</style>")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>edgekit report</title>{style}</head>" \
           f"<body>{''.join(body)}{script}</body></html>"


def render_markdown(rows, not_run, series=()) -> str:
    lines = []
    if rows:
        lines += ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
        lines += ["| " + " | ".join(c) + " |" for c in _table_rows(rows)]
        lines += ["", *_distilled(rows)] if _distilled(rows) else []
    if series:
        lines += ["", "| " + " | ".join(history.TREND_HEAD) + " |", "|" + "---|" * len(history.TREND_HEAD)]
        lines += ["| " + " | ".join(c) + " |" for c in history.trend_rows(series)]
    if not_run:
        lines += ["", "Not run or failed:", ""]
        lines += [f"- {r['model']}/{r['target']}: {r['artifact']} — {r['verification']}: {r.get('reason') or ''}"
                  for r in not_run]
    return "\n".join(lines) + "\n"


def make_report(bundles: list[str], html_out: str, markdown_out: str | None, json_out: str | None, bench_args,
                sweeps: list[str] = (), history_db: str | None = None, model: str | None = None,
                target: str | None = None, layers: bool = False) -> int:
    """Bundles are benchmarked here; sweeps (sweep.json) and the history database are read as they are.
    layers: each bundle's artifacts are also traced layer by layer (edgekit debug) and plotted."""
    from .bundle import write_atomically
    from .errors import UsageError

    if not (bundles or sweeps or history_db is not None):
        raise UsageError("report needs at least one bundle, --sweep SWEEP.json or --history",
                         hint="edgekit report build/digits-cpu --html report.html")
    rows, not_run, results = collect([Path(b) for b in bundles], bench_args) if bundles else ([], [], [])
    for sw in sweeps:
        r, n, res = collect_sweep(Path(sw))
        rows, not_run, results = rows + r, not_run + n, results + res
    series = history.trends(history_db or None, model, target) if history_db is not None else []
    if not rows and not series:
        raise UsageError("nothing to report: no usable, benchmarked artifact"
                         + (" and no bench results in the history for that selection" if history_db is not None else ""))
    plots = _plots(rows)
    if series:
        plots = {"trend": _trend_plot(series), **plots}
    traces = _layer_traces([Path(b) for b in bundles]) if layers else []
    if traces:
        from .debug.html import curve_png

        plots["layers"] = curve_png(traces)
    json_path = Path(json_out) if json_out else Path(html_out).with_suffix(".bench.json")
    for p in (json_path, Path(html_out), Path(markdown_out) if markdown_out else None):
        if p:
            p.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(json_path, json.dumps({"results": results, "history": series}, indent=1))
    write_atomically(Path(html_out), render_html(rows, not_run, results, plots, series, traces))
    md = render_markdown(rows, not_run, series) + "".join(f"\n{t['label']}: {t['line']}" for t in traces)
    if markdown_out:
        write_atomically(Path(markdown_out), md)
    print(md)
    print(f"[edgekit] report: {html_out} ({len(plots)} plots); bench JSON: {json_path}", file=sys.stderr)
    return 0
