"""`edgekit report`: benchmark bundles' artifacts and write one self-contained HTML page (+ Markdown summary)
with plots."""
from __future__ import annotations

from .common import add_bench_opts


def add_parser(sub) -> None:
    rp = sub.add_parser("report", help="benchmark bundles' artifacts and write one self-contained HTML page "
                        "(+ Markdown summary) with plots")
    rp.add_argument("bundles", nargs="*", metavar="BUNDLE")
    rp.add_argument("--sweep", action="append", metavar="SWEEP.json", help="a finished sweep's results (repeat)")
    rp.add_argument("--history", nargs="?", const="", metavar="DB", help="latency over time from the history "
                    "database (default $EDGEKIT_HISTORY or ~/.local/share/edgekit/history.sqlite), with change points")
    rp.add_argument("--model", help="with --history: only this model")
    rp.add_argument("--target", help="with --history: only this target")
    rp.add_argument("--html", required=True, help="the page to write (self-contained, no network)")
    rp.add_argument("--markdown", help="a Markdown summary for CI logs and pull requests")
    rp.add_argument("--layers", action="store_true", help="also trace each bundle's artifacts layer by layer against "
                    "the source model (edgekit debug: ONNX Runtime, LiteRT, ExecuTorch) and plot error against depth")
    add_bench_opts(rp)


def run(args) -> int:
    from ..report import make_report

    args.keep_samples, args.profile = True, True  # distributions and per-op breakdown need both
    return make_report(args.bundles, args.html, args.markdown, args.json, args, args.sweep or [],
                       args.history, args.model, args.target, args.layers)
