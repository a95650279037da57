"""`edgekit debug`: the first layer where an artifact leaves its source model, on the artifact's own runtime."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError, did_you_mean
from ..table import render
from .common import write_json

SHOWN = 40  # table rows per artifact in the terminal; --json has every layer


def add_parser(sub) -> None:
    d = sub.add_parser("debug", help="run the source model and an artifact on one input with intermediate tensors "
                       "exposed; per layer: cosine, SNR, max-abs and relative error, and the first layer whose error "
                       "jumps beyond what the precision explains")
    d.add_argument("bundle")
    d.add_argument("--artifact", help="artifact id (default: every artifact whose runtime debug reads here)")
    d.add_argument("--input", metavar="FILE", help="the input to trace (first sample of a .npz named like the inputs, "
                   ".npy, image folder or .txt, as --calibration); default: the bundle's first self-test vector")
    d.add_argument("--json", help="write every layer's numbers as JSON")
    d.add_argument("--html", help="write the error-vs-depth curve of each artifact to this HTML page")


def run(args) -> int:
    from ..bundle import open_bundle
    from ..debug import READERS
    from ..debug.run import trace_bundle, traceable

    bundle = Path(args.bundle)
    manifest = open_bundle(bundle)
    if args.input and not Path(args.input).exists():
        raise UsageError(f"--input {args.input}: no such file or folder")
    ids = [a.id for a in manifest.artifacts]
    if args.artifact:
        if args.artifact not in ids:
            raise UsageError(f"no artifact {args.artifact!r} in {bundle}{did_you_mean(args.artifact, ids)}")
        arts = [a for a in manifest.artifacts if a.id == args.artifact]
        if arts[0].runtime not in READERS:
            raise UsageError(f"debug reads layers on {', '.join(READERS)}; {arts[0].id} runs on {arts[0].runtime}")
    else:
        arts, left = traceable(manifest)
        if left:
            print(f"[edgekit] debug: not traced: {', '.join(f'{a.id} ({a.runtime})' for a in left)}: debug reads "
                  f"layers on {', '.join(READERS)}, on this machine", file=sys.stderr)
        if not arts:
            raise UsageError(f"{bundle} has no artifact on a runtime debug reads ({', '.join(READERS)})")
    results = trace_bundle(bundle, arts, args.input)
    for r in results:
        print(table(r))
    if args.json:
        write_json(args.json, results)
    if args.html:
        from ..debug.html import write_html

        write_html(args.html, results, f"{manifest.model['name']} -> {manifest.target['name']} ({bundle})")
    return 1 if any(r.get("error") for r in results) else 0


def table(r: dict) -> str:
    if r.get("error"):
        return f"{r['artifact']} ({r['runtime']}, {r['precision']}): the trace failed: {r['error']}\n{r['line']}"
    rows = [x for x in r["rows"] if "rel_err" in x]
    first = r.get("first")
    idx = next((i for i, x in enumerate(rows) if first and x["name"] == first["name"]), None)
    keep = set(range(min(len(rows), SHOWN // 2))) | set(range(max(0, len(rows) - 5), len(rows)))
    if idx is not None:
        keep |= set(range(max(0, idx - 3), min(len(rows), idx + 4)))
    out, last = [], -1
    for i in sorted(keep):
        x = rows[i]
        if i != last + 1:
            out.append(["...", "", "", "", "", "", "", "", ""])
        src = x.get("source")
        out.append([x["name"] + ("  <-- first divergence" if i == idx else ""), x.get("module") or x.get("op", ""),
                    f"{Path(src['file']).name}:{src['line']}" if src else "", "x".join(map(str, x["shape"])),
                    f"{x['cosine']:.6f}", "exact" if x["snr_db"] is None else f"{x['snr_db']:.1f}", f"{x['max_abs']:.2e}", f"{x['rel_err']:.2e}",
                    f"{x['growth']:.1f}x" if x.get("growth") else "-"])
        last = i
    outs = "; ".join(f"{k}: cosine {m['cosine']:.6f}, rel err {m['rel_err']:.2e}" for k, m in r["outputs"].items())
    title = (f"{r['artifact']} ({r['runtime']}, {r['precision']}) vs the source model on {r['input']}: "
             f"{r['matched']} of {r['source_layers']} source layers matched\noutputs: {outs}")
    notes = "".join(f"\nnote: {n}" for n in r.get("notes", []))
    return render(["layer", "module / op", "source", "shape", "cosine", "SNR dB", "max abs", "rel err", "growth"],
                  out, title) + notes + "\n" + r["line"]
