"""`edgekit check`: pre-flight: which operators each candidate of a target can convert and run."""
from __future__ import annotations

from .common import add_input_opt


def add_parser(sub) -> None:
    ck = sub.add_parser("check", help="pre-flight: which operators each candidate of a target can convert and run")
    ck.add_argument("--model", help="as for compile (default builtin:digits)")
    ck.add_argument("--target", required=True, help="target profile (see `edgekit targets`)")
    ck.add_argument("--weights", help="state dict for a factory's module")
    add_input_opt(ck)
    ck.add_argument("--json", help="write the full report (every operator, verdict and table) as JSON")


def run(args) -> int:
    from ..opcheck import check_model

    return check_model(args.model, args.target, args.weights, args.json, args.input)
