"""What several commands share: their common options, result files, the bundle summary table and the
history record. The commands themselves are one module each in this package."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UsageError
from ..table import render, size, verification_cell


def write_json(path: str, payload) -> None:
    from ..bundle import write_atomically

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(p, json.dumps(payload, indent=2))


RESULT_FILES = ("json", "markdown", "html")


def check_result_paths(args) -> None:
    for opt in RESULT_FILES:
        value = getattr(args, opt, None)
        if not isinstance(value, str) or not value:
            continue
        p = Path(value)
        if p.is_dir():
            raise UsageError(f"--{opt} {value} is a folder; give a file name")
        if not writable(p):
            raise UsageError(f"--{opt} {value}: cannot write there (read-only, permission denied or not a folder); "
                             "checked before any work, so nothing is lost", hint="choose a path you can write to")


def writable(p: Path) -> bool:
    """Whether `p` can be written, found by trying: os.access answers yes for root on /proc or a
    read-only bind mount. An existing file is opened for append (nothing written); otherwise a probe
    file is created and removed at once in the nearest existing folder on the way to `p`, which is
    where the result (and any folders leading to it) will be written anyway."""
    import tempfile

    try:
        if p.exists():
            with open(p, "ab"):
                return True
        parent = next((d for d in [p.parent, *p.parent.parents] if d.exists()), Path("."))
        if not parent.is_dir():
            return False
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".edgekit-probe-"):
            return True
    except OSError:
        return False


def whole_number(text: str, least: int = 1, below: str = "must be at least 1") -> int:
    """An argparse type: a whole number >= least; `below` says what it must be when it is not."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{below}, got {value}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text)


def summary(bundle: Path, manifest, bench: dict[str, dict]) -> str:
    rows = []
    for a in manifest.artifacts:
        b = bench.get(a.id)
        lat = b["latency_ms"] if b else None
        acc = a.verification.accuracy
        rows.append([a.id, a.role, a.runtime, a.precision, size(a.size_bytes), verification_cell(a.verification),
                     f"{100 * acc:.1f}%" if acc is not None else "-",
                     f"{lat['p50']:.3f}" if lat else "-", f"{lat['p90']:.3f}" if lat else "-",
                     str(b["runs"]) if b else "-"])
    for f in manifest.failed_candidates:
        rows.append([f["id"], "failed", "", "", "", f["error"][:60], "", "", "", ""])
    m = manifest.model
    title = (f"{m['name']} -> target '{manifest.target['name']}'  ({bundle})\n"
             f"reference: {m['reference']}; held-out data: {m['verify_data']}"
             + (f"; source accuracy {100 * m['source_accuracy']:.1f}%" if m.get("source_accuracy") is not None else ""))
    if m.get("distillation"):  # compile --distill-from
        from ..distill import describe

        title += "\n" + describe(m["distillation"])
    where = ""
    if bench:
        any_b = next(iter(bench.values()))
        where = (f"\nlatency: {any_b['threads']} thread(s), measured on {any_b['measured_on']}: "
                 f"{any_b['env']['cpu']['model']}")
    caveats = "".join(f"\n* {a.id}: {c}" for a in manifest.artifacts for c in a.verification.caveats)
    return render(["artifact", "role", "runtime", "precision", "size", "verification", "accuracy",
                   "p50 ms", "p90 ms", "runs"], rows, title) + caveats + where


def record(args, kind: str, results: list[dict], manifest) -> None:
    """Every bench/verify result goes into the history database, unless --no-history. A history
    that cannot be written is a warning: it never costs the user the result itself."""
    if getattr(args, "no_history", False):
        return
    from .. import history

    try:
        for r in results:
            history.record(kind, r, manifest, args.history)
    except Exception as e:  # noqa: BLE001
        print(f"edgekit: warning: result not recorded in the history ({args.history or history.default_path()}): "
              f"{type(e).__name__}: {e}", file=sys.stderr)


def add_device_opts(p):
    p.add_argument("--device", help="`chromium`: in a page of headless Chromium on this host (TF.js artifacts); or a "
                   "remote device: ssh://user@host[:port] (the device needs python3, "
                                    "numpy and the artifact's runtime)")
    p.add_argument("--identity", help="SSH private key for --device")
    p.add_argument("--device-python", default="python3", help="python on the device (default python3)")
    p.add_argument("--known-hosts", help="known_hosts file for --device (default: ssh's own)")
    p.add_argument("--device-timeout", type=float, metavar="SECONDS", help="limit for the whole remote session "
                   "(copy + run; default 300 for verify, 600 for bench, 900 for build); raise it for slow or "
                   "emulated devices and many self-test vectors")


def add_input_opt(p):
    p.add_argument("--input", action="append", metavar="NAME:SHAPE[:DTYPE]",
                   help="an .onnx model input's shape, e.g. image:1x3x640x640 or input_ids:1x128:int64 (repeat per "
                        "input); required for inputs with symbolic dims, which edgekit never sets to a made-up size; "
                        "or NAME=VALUE, a fixed value for a control input (e.g. sr=16000)")


def add_history_opts(p):
    p.add_argument("--history", help="record results in this SQLite file (default $EDGEKIT_HISTORY or "
                   "~/.local/share/edgekit/history.sqlite)")
    p.add_argument("--no-history", action="store_true", help="do not record the results")


def add_bench_opts(p):
    p.add_argument("--threads", type=positive_int, default=1,
                   help="runtime threads, 1 or more (default 1: reproducible numbers)")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds (default 0.5)")
    p.add_argument("--min-runs", type=positive_int, default=50, help="at least this many timed runs (default 50)")
    p.add_argument("--min-time", type=float, default=1.0, help="and at least this many seconds (default 1)")
