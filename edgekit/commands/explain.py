"""`edgekit explain`: how each quantized artifact was made: static INT8's numbers, the layers kept in float by
the mixed-precision search and their share of the error."""
from __future__ import annotations



def add_parser(sub) -> None:
    ex = sub.add_parser("explain", help="how each quantized artifact was made: static INT8's numbers, the layers "
                        "kept in float by the mixed-precision search and their share of the error")
    ex.add_argument("bundle")
    ex.add_argument("--artifact", help="one artifact id (default: all)")
    ex.add_argument("--json", help="write the recorded quantization details as JSON")


def run(args) -> int:
    from ..explain import explain

    return explain(args.bundle, args.artifact, args.json)
