"""`edgekit history`: bench results over time per model/target/artifact/device, with a change-point check that
flags steps and slow creep."""
from __future__ import annotations

from ..table import render
from .common import write_json


def add_parser(sub) -> None:
    h = sub.add_parser("history", help="bench results over time per model/target/artifact/device, with a "
                       "change-point check that flags steps and slow creep")
    h.add_argument("--model")
    h.add_argument("--target")
    h.add_argument("--artifact")
    h.add_argument("--history", help="the SQLite file (default $EDGEKIT_HISTORY or "
                   "~/.local/share/edgekit/history.sqlite)")
    h.add_argument("--min-effect", type=float, default=0.05, help="smallest step reported (default 0.05 = 5%%)")
    h.add_argument("--json", help="write every series and its change point as JSON")


def run(args) -> int:
    from .. import history

    found = history.trends(args.history, args.model, args.target, args.artifact, args.min_effect)
    if not found:
        print(f"no bench results in {args.history or history.default_path()}"
              + (" for that selection" if args.model or args.target or args.artifact else ""))
        return 0
    print(render(history.TREND_HEAD, history.trend_rows(found), f"history: {args.history or history.default_path()}"))
    if args.json:
        write_json(args.json, found)
    return 0
