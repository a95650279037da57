"""`edgekit gate`: latency/size/accuracy regression gate: exit 0 pass, 1 regression, 2 usage error."""
from __future__ import annotations

import sys

from ..errors import UsageError
from .common import write_json


def add_parser(sub) -> None:
    g = sub.add_parser("gate", help="latency/size/accuracy regression gate: exit 0 pass, 1 regression, 2 usage error")
    g.add_argument("--baseline", help="bundle (or .onnx artifact) to compare against, measured side by side")
    g.add_argument("--baseline-file", help="bench JSON with samples_ms, recorded earlier (e.g. on a device)")
    g.add_argument("--candidate", required=True, help="bundle (or .onnx artifact) under test")
    g.add_argument("--blocks", type=int, default=20, help="interleaved ABBA blocks (default 20)")
    g.add_argument("--block-seconds", type=float, default=0.1, help="seconds per segment (default 0.1)")
    g.add_argument("--min-effect", type=float, default=0.05, help="smallest slowdown that fails (default 0.05 = 5%%)")
    g.add_argument("--max-size-growth", type=float, default=0.05, help="allowed size growth (default 0.05)")
    g.add_argument("--max-accuracy-drop", type=float, default=0.005, help="allowed accuracy drop (default 0.005)")
    g.add_argument("--no-confirm", action="store_true", help="do not rerun a flagged result before failing")
    g.add_argument("--markdown", help="append the Markdown summary to this file (also $GITHUB_STEP_SUMMARY)")
    g.add_argument("--json", help="write the full result as JSON")


def run(args) -> int:
    """Exit 0 pass, 1 regression, 2 usage error (any problem with the inputs themselves)."""
    import os

    from ..errors import EdgekitError as _E
    from ..gate import GateConfig, markdown, run_baseline_file, run_gate

    if bool(args.baseline) == bool(args.baseline_file):
        raise UsageError("give exactly one of --baseline BUNDLE and --baseline-file BENCH.json")
    cfg = GateConfig(blocks=args.blocks, min_effect=args.min_effect, block_seconds=args.block_seconds,
                     confirm=not args.no_confirm, max_size_growth=args.max_size_growth,
                     max_accuracy_drop=args.max_accuracy_drop)
    if cfg.blocks < 5:
        raise UsageError("--blocks must be at least 5 (20 or more recommended)")
    print(f"[edgekit] gate: {cfg.blocks} interleaved blocks, 1 thread ...", file=sys.stderr, flush=True)
    try:
        res = (run_gate(args.baseline, args.candidate, cfg) if args.baseline
               else run_baseline_file(args.baseline_file, args.candidate, cfg))
    except UsageError:
        raise
    except _E as e:  # a missing/corrupt bundle is a problem with the gate's inputs: usage error
        raise UsageError(e.message, hint=e.hint) from None
    md = markdown(res, cfg)
    print(md)
    for path in filter(None, [args.markdown, os.environ.get("GITHUB_STEP_SUMMARY")]):
        with open(path, "a") as f:
            f.write(md)
    if args.json:
        write_json(args.json, {"regression": res.regression, "latency_regression": res.latency_regression,
                                "attempts": res.attempts, "checks": res.checks, "caveats": res.caveats})
    return 1 if res.regression else 0
