"""`edgekit sweep`: compile+verify+bench every cell of a models x targets x precisions (x devices) matrix
(TOML), locally or on a Ray cluster; results go to the history database."""
from __future__ import annotations

from ..errors import UsageError
from ..table import render
from .common import add_history_opts, write_json


def add_parser(sub) -> None:
    sw = sub.add_parser("sweep", help="compile+verify+bench every cell of a models x targets x precisions (x devices) "
                        "matrix (TOML), locally or on a Ray cluster; results go to the history database")
    sw.add_argument("matrix", metavar="MATRIX.toml")
    sw.add_argument("--out", help="folder for the cells' bundles and sweep.json (default build/sweep-NAME)")
    sw.add_argument("--workers", type=int, help="local worker processes (default: half the CPU cores)")
    sw.add_argument("--ray", metavar="ADDRESS", help="run the cells on this Ray cluster (e.g. 127.0.0.1:6379; "
                    "needs pip install 'edgekit[sweep]' here and on the nodes)")
    sw.add_argument("--force", action="store_true", help="rerun cells whose inputs have not changed")
    sw.add_argument("--json", help="write the results table as JSON")
    add_history_opts(sw)


def run(args) -> int:
    """Exit 0 when every cell built a verified artifact, 12 when some did, 6 when none did."""
    from ..errors import EXIT_DEGRADED
    from ..sweep import TABLE, sweep, table_lines

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    out, rows = sweep(args.matrix, args.out, args.workers, args.ray, args.force, args.history, not args.no_history)
    print(render(TABLE, table_lines(rows), f"sweep: {out / 'sweep.json'}"))
    if args.json:
        write_json(args.json, rows)
    failed = sum(r["status"] == "failed" for r in rows)
    return 0 if not failed else EXIT_DEGRADED if failed < len(rows) else 6
