"""Benchmark one artifact honestly: load time, first run, warm-up, then >= 50 runs and >= 1 s.

`measure` runs in a child process (edgekit.isolate) that imports only numpy and the artifact's
runtime, so peak RSS is the runtime's, not the CLI's. Inputs are the bundle's self-test vectors.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

WARMUP_S, MIN_RUNS, MIN_TIME_S, MAX_TIME_S = 0.5, 50, 1.0, 120.0


def options_from(args) -> dict:
    """bench_all's keyword options from parsed command-line arguments (bench, compile --bench, report)."""
    return {"shapes": getattr(args, "shapes", None), "warmup_s": getattr(args, "warmup", WARMUP_S),
            "min_runs": getattr(args, "min_runs", MIN_RUNS), "min_time_s": getattr(args, "min_time", MIN_TIME_S),
            "keep_samples": getattr(args, "keep_samples", False), "profile": getattr(args, "profile", False),
            "runtime": getattr(args, "runtime", None)}


def bench_all(bundle: Path, artifact_ids, threads: int | None = 1, shapes: list[dict] | None = None,
              warmup_s: float = WARMUP_S, min_runs: int = MIN_RUNS, min_time_s: float = MIN_TIME_S,
              keep_samples: bool = False, profile: bool = False, runtime: str | None = None) -> list[dict]:
    """Benchmark each artifact (at each of `shapes`, for dynamic dims) in a child process of its own,
    one after another (never two at once: they would share the cores). Progress goes to stderr."""
    import shutil

    from .isolate import run_step

    logs = log_dir(Path(bundle))
    results = []
    for aid in artifact_ids:
        for shape in shapes or [None]:
            at = f" at {', '.join(f'{k}={v}' for k, v in shape.items())}" if shape else ""
            print(f"[edgekit] bench {aid}{at} ({threads} thread{'s' if threads != 1 else ''}) ...", file=sys.stderr,
                  flush=True)
            results.append(run_step(f"bench-{aid}", "edgekit.bench:measure",
                                    {"bundle_dir": str(bundle), "artifact_id": aid, "threads": threads,
                                     "warmup_s": warmup_s, "min_runs": min_runs, "min_time_s": min_time_s,
                                     "progress": True, "keep_samples": keep_samples, "profile": profile,
                                     "runtime": runtime, "shape": shape},
                                    logs, stderr_to_terminal=True))
    # Every child finished: nothing to diagnose. A failure raised above and kept the folder (its
    # error names the log); left behind on success, one folder per call filled /tmp.
    shutil.rmtree(logs, ignore_errors=True)
    return results


def log_dir(bundle: Path) -> Path:
    """Bench logs go to a temp folder: a bundle may be read-only on a device and is never modified."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"edgekit-bench-{bundle.name}-"))


def latency_stats(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(a.mean()),
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "min": float(a.min()), "max": float(a.max())}


def measure(bundle_dir: str, artifact_id: str, threads: int | None, warmup_s: float = WARMUP_S,
            min_runs: int = MIN_RUNS, min_time_s: float = MIN_TIME_S, progress: bool = False,
            keep_samples: bool = False, profile: bool = False, runtime: str | None = None,
            shape: dict | None = None) -> dict:
    """`runtime` runs the artifact on another runtime of the same format (BROWSER_RUNTIMES).
    `shape` ({dim: size}, bench --shape): a model with dynamic dims is timed at those sizes, on its
    self-test input cropped or wrapped to them (edgekit.sources.dynamic.at_point)."""
    from .bundle import open_bundle
    from .envinfo import environment
    from .selftest import selftest_feeds
    from .runtimes import open_runner, runner_class

    manifest = open_bundle(bundle_dir)
    art = next(a for a in manifest.artifacts if a.id == artifact_id)
    feeds = selftest_feeds(Path(bundle_dir), manifest)[0][0]
    if shape:
        from .sources.dynamic import DynamicDim, at_point

        feeds = at_point(feeds, [DynamicDim.from_dict(d) for d in manifest.model["dynamic"]], shape)
    runtime = runtime or art.runtime
    cls = runner_class(runtime)
    t = time.perf_counter()
    runner = open_runner(runtime, Path(bundle_dir) / art.path, threads, art.inputs, art.outputs, art.input_layout)
    load_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    runner.run(feeds)
    first_ms = (time.perf_counter() - t) * 1e3
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        runner.run(feeds)
    times, start, last_note = runner.timed_runs(feeds, min_runs, min_time_s) or [], time.perf_counter(), time.perf_counter()
    k = getattr(getattr(runner, "runner", runner), "runs_per_sample", 1)
    timed_by = ("the runtime itself (performance.now() around execute + output download"
                + (f"; each sample = {k} back-to-back runs / {k}" if k > 1 else "") + ")") if times else "this process"
    while (len(times) < min_runs or time.perf_counter() - start < min_time_s) and time.perf_counter() - start < MAX_TIME_S:
        t = time.perf_counter()
        runner.run(feeds)
        times.append((time.perf_counter() - t) * 1e3)
        if progress and time.perf_counter() - last_note > 3:
            print(f"  {artifact_id}: {len(times)} runs ...", file=sys.stderr, flush=True)
            last_note = time.perf_counter()
    timed_s = time.perf_counter() - start
    extra = {"samples_ms": times} if keep_samples else {}  # for `gate --baseline-file`
    notes = []
    stats = latency_stats(times)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # before a profiled second session
    prof = None
    if profile:  # after the timed runs, in a separate profiled session: the latency above is unprofiled
        try:
            prof = runner.profile(feeds, runs=min(max(20, len(times) // 2), 200))
        except Exception as e:  # noqa: BLE001 — the profile is an extra: never lose the timing for it
            prof = None
            notes.append(f"per-operator profile failed: {type(e).__name__}: {str(e)[:200]}")
        else:
            if prof is None:
                notes.append(f"per-operator profile: the {art.runtime} runtime exposes no per-operator profiler "
                             "from Python here (profiled runtimes: onnxruntime, executorch)")
            else:
                prof["coverage_of_p50"] = prof["ops_ms_per_run"] / stats["p50"] if stats["p50"] else None
                if prof["coverage_of_p50"] and prof["coverage_of_p50"] > 1.3:
                    notes.append(f"per-operator times add up to {100 * prof['coverage_of_p50']:.0f}% of the "
                                 "unprofiled p50: the profiler's own per-operator cost (~10 us in ONNX Runtime) "
                                 "dominates a model this fast; read the shares as indicative")
    from .envinfo import emulation
    from .roofline import roofline

    try:
        # a --fallback-model artifact is another model: its own cost, or none (never the main model's);
        # none at another shape than the opt one either: the FLOP count is the opt shape's; none on an
        # emulated CPU, whose "peak" would be QEMU's speed (and measuring it takes minutes there)
        roof = None if shape or emulation() else roofline(art.model.get("cost") if art.model else manifest.model.get("cost"),
                                           stats["p50"], threads)
    except Exception as e:  # noqa: BLE001 — the roofline is an extra: never lose the timing for it
        roof = None
        notes.append(f"roofline not computed: {type(e).__name__}: {str(e)[:200]}")
    if hasattr(runner, "close"):
        runner.close()
    if times and timed_by != "this process":
        notes.append("peak RSS is edgekit's own process; the JS runtime (Node or the browser page) runs in another")
    if len(times) < min_runs:
        notes.append(f"stopped at the {MAX_TIME_S:.0f} s cap after {len(times)} runs (< {min_runs}): "
                     "percentiles rest on few runs")
    return {
        "notes": notes,
        "artifact": art.id, "runtime": runtime, "precision": art.precision, "format": art.format, "timed_by": timed_by,
        **({"shape": shape, "input_shapes": {k: list(v.shape) for k, v in feeds.items()}} if shape else {}),
        "latency_ms": stats, "runs": len(times), "profile": prof, "roofline": roof, "timed_s": timed_s, "load_ms": load_ms, "first_run_ms": first_ms,
        "peak_rss_mb": peak_rss_mb,
        "size_bytes": art.size_bytes, "threads": threads,
        # share of operators / FLOPs the runtime's accelerated backend takes (LiteRT, ExecuTorch)
        "delegation": art.converter.get("delegation"),
        "measured_on": ("headless Chromium on this host" if runtime == "tfjs-chromium" else "target"
                        if manifest.target.get("host_is_target") else "host (not the target device)"),
        "user_agent": getattr(runner, "user_agent", None),
        "env": environment(threads, art.runtime, cls.version()),
        **extra,
    }
