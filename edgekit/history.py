"""Every bench and verify result, kept in one SQLite file with its provenance; trends and a
change-point check over them.

Sweep cells (edgekit.sweep) are kept in their own table keyed by the hash of their inputs, so a
rerun sweep can reuse what is unchanged. The database is one file (default ~/.local/share/edgekit/history.sqlite; $EDGEKIT_HISTORY or
--history PATH to move it, --no-history to skip). Each result is stored once: its key is the
sha256 of the result itself, so re-recording the same result (a retried job, a re-imported JSON)
writes nothing. SQLite's WAL mode and a busy timeout let several processes record at once.

The change-point check looks for one step in a series of medians (log scale, robust): for every
split point it compares the medians before and after, scaled by the pooled MAD; the largest
standardized difference must pass a threshold (chosen from A/A simulations in tests) *and* the
step must be at least `min_effect`. A slow creep of 1 % per run, invisible to a single A/B gate
with a 5 % threshold, shows up as a step between the early and the late runs.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from statistics import median
import subprocess
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    result_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    model TEXT, model_sha256 TEXT, target TEXT, artifact TEXT, runtime TEXT, precision TEXT,
    device TEXT, threads INTEGER,
    p50_ms REAL, p90_ms REAL, size_bytes INTEGER, status TEXT,
    edgekit_version TEXT, git_commit TEXT, toolchains TEXT, environment TEXT, payload TEXT
);
CREATE INDEX IF NOT EXISTS results_series ON results (model, target, artifact, device, recorded_at);
CREATE TABLE IF NOT EXISTS sweep_cells (
    id INTEGER PRIMARY KEY,
    cell_key TEXT NOT NULL,
    sweep TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    model TEXT, target TEXT, precision TEXT, device TEXT, status TEXT, error TEXT, result TEXT,
    UNIQUE (cell_key, sweep)
);
CREATE INDEX IF NOT EXISTS sweep_cells_key ON sweep_cells (cell_key, finished_at);
"""


def default_path() -> Path:
    return Path(os.environ.get("EDGEKIT_HISTORY") or Path.home() / ".local" / "share" / "edgekit" / "history.sqlite")


def connect(path: Path | None = None) -> sqlite3.Connection:
    path = Path(path or default_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    return db


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def result_key(kind: str, result: dict) -> str:
    return hashlib.sha256(json.dumps([kind, result], sort_keys=True, default=str).encode()).hexdigest()


def record(kind: str, result: dict, manifest, path: Path | None = None, recorded_at: str | None = None) -> bool:
    """Store one bench/verify result with the bundle's provenance; False if it was already stored."""
    from . import __version__

    art = next((a for a in manifest.artifacts if a.id == result.get("artifact")), None)
    lat = result.get("latency_ms") or {}
    env = result.get("env") or {}
    row = {
        "result_key": result_key(kind, result), "kind": kind,
        "recorded_at": recorded_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": manifest.model.get("name"), "model_sha256": manifest.model.get("sha256"),
        "target": manifest.target.get("name"), "artifact": result.get("artifact"),
        "runtime": result.get("runtime") or (art.runtime if art else None),
        "precision": result.get("precision") or (art.precision if art else None),
        "device": result.get("measured_on"), "threads": result.get("threads"),
        "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"),
        "size_bytes": result.get("size_bytes") or (art.size_bytes if art else None),
        "status": result.get("status") or ("measured" if lat else None),
        "edgekit_version": __version__, "git_commit": _git_commit(),
        "toolchains": json.dumps(art.toolchain if art else {}), "environment": json.dumps(env),
        "payload": json.dumps({k: v for k, v in result.items() if k != "samples_ms"}, default=str),
    }
    with connect(path) as db:
        cur = db.execute(f"INSERT OR IGNORE INTO results ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         list(row.values()))
        return cur.rowcount == 1


def record_cell(res: dict, path: Path | None = None) -> bool:
    """One finished sweep cell (failed ones too, with their error); once per cell and sweep."""
    c = res["cell"]
    with connect(path) as db:
        cur = db.execute("INSERT OR IGNORE INTO sweep_cells (cell_key, sweep, finished_at, model, target, precision, "
                         "device, status, error, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (res["cell_key"], res["sweep"], datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          c["model"], c["target"], c["precision"], c["device"], res["status"], res.get("error"),
                          json.dumps(res, default=str)))
        return cur.rowcount == 1


def cell_result(cell_key: str, path: Path | None = None) -> dict | None:
    """The latest stored result of a sweep cell with these exact inputs, or None."""
    with connect(path) as db:
        row = db.execute("SELECT result FROM sweep_cells WHERE cell_key = ? ORDER BY finished_at DESC, id DESC LIMIT 1",
                         (cell_key,)).fetchone()
    return json.loads(row[0]) if row else None


def series(path: Path | None = None, model: str | None = None, target: str | None = None,
           artifact: str | None = None) -> dict[tuple, list[tuple[str, float]]]:
    """(model, target, artifact, device) -> [(recorded_at, p50_ms)] in time order, bench results only."""
    q = "SELECT model, target, artifact, device, recorded_at, p50_ms FROM results WHERE kind = 'bench' AND p50_ms IS NOT NULL"
    args = []
    for col, val in (("model", model), ("target", target), ("artifact", artifact)):
        if val:
            q += f" AND {col} = ?"
            args.append(val)
    out: dict[tuple, list] = {}
    with connect(path) as db:
        for m, t, a, d, when, p50 in db.execute(q + " ORDER BY recorded_at, id", args):
            out.setdefault((m, t, a, d), []).append((when, p50))
    return out


# Standardized step that counts as a change, and the shortest segment. Measured by simulation
# (40 runs, min_effect 5 %): flat series flagged 0/300 at 3 % and at 10 % noise, 2/300 with 5 % of
# runs 1.5x outliers; a +10 % step is found 99 % of the time at 3 % noise (9 % at 10 % noise: noise
# that large hides a 10 % step); a 1 %-per-run creep 100 % at 3 % noise, 84 % at 10 %.
THRESHOLD = 6.0
MIN_SEGMENT = 5


def change_point(values: list[float], min_effect: float = 0.05, threshold: float = THRESHOLD) -> dict | None:
    """The most likely single step in a series of latencies, or None when there is none worth
    reporting: {'index', 'before_ms', 'after_ms', 'ratio', 'score'}."""
    n = len(values)
    if n < 2 * MIN_SEGMENT:
        return None
    logs = [math.log(v) for v in values]
    best = None
    for k in range(MIN_SEGMENT, n - MIN_SEGMENT + 1):
        a, b = logs[:k], logs[k:]
        ma, mb = median(a), median(b)
        mad = median([abs(x - ma) for x in a] + [abs(x - mb) for x in b]) * 1.4826
        scale = max(mad, 1e-3) * math.sqrt(1 / len(a) + 1 / len(b))  # floor: a 0.1 % noise level
        score = abs(mb - ma) / scale
        if best is None or score > best[0]:
            best = (score, k, ma, mb)
    score, k, ma, mb = best
    ratio = math.exp(mb - ma)
    if score < threshold or abs(ratio - 1) < min_effect:
        return None
    return {"index": k, "before_ms": math.exp(ma), "after_ms": math.exp(mb), "ratio": ratio, "score": score}


TREND_HEAD = ["model", "target", "artifact", "device", "runs", "first", "last", "first-5 p50 ms", "last-5 p50 ms",
              "change point"]


def trends(path: Path | None = None, model: str | None = None, target: str | None = None,
           artifact: str | None = None, min_effect: float = 0.05) -> list[dict]:
    """Every bench series (optionally one model/target/artifact) with its change point, sorted."""
    out = []
    for (m, t, a, d), pts in sorted(series(path, model, target, artifact).items(),
                                    key=lambda kv: [str(x) for x in kv[0]]):
        out.append({"model": m, "target": t, "artifact": a, "device": d,
                    "runs": [{"at": w, "p50_ms": v} for w, v in pts],
                    "change_point": change_point([v for _, v in pts], min_effect=min_effect)})
    return out


def trend_rows(found: list[dict]) -> list[list[str]]:
    """One table row per series (columns TREND_HEAD), for `history` and `report --history`."""
    rows = []
    for sr in found:
        ys, cp, runs = [r["p50_ms"] for r in sr["runs"]], sr["change_point"], sr["runs"]
        rows.append([sr["model"], sr["target"], sr["artifact"], str(sr["device"]), str(len(ys)), runs[0]["at"][:10],
                     runs[-1]["at"][:10], f"{median(ys[:5]):.3f}", f"{median(ys[-5:]):.3f}",
                     f"STEP x{cp['ratio']:.2f} at run {cp['index'] + 1} ({runs[cp['index']]['at']})" if cp else "-"])
    return rows
