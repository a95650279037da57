"""The latency-regression gate: is the candidate slower than the baseline, beyond noise?

Both artifacts run in this one process, one thread, pinned to one CPU, interleaved in blocks
(ABBA, then BAAB) with a warm-up before every segment, so drift and noisy neighbours hit both
alike. Each block gives one number, log(median B / median A). The decision uses the median of
those numbers over >= 20 blocks and its bootstrap 95% interval: a regression needs the interval
above 0 AND an estimated slowdown of at least `min_effect`; a flag is confirmed by rerunning the
whole measurement once. Size and accuracy are deterministic checks in the same command.

Why this shape: single-run thresholds on a shared machine give tens of percent false alarms
(benchmarks/gate_power.py measures this gate's false-alarm and detection rates here).
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import EdgekitError, UsageError


@dataclass(frozen=True)
class GateConfig:
    blocks: int = 20
    block_seconds: float = 0.1  # per segment; a block is 4 segments
    warmup_runs: int = 3  # untimed runs before every segment
    min_effect: float = 0.05  # smallest slowdown worth failing CI for (5%)
    confidence: float = 0.95
    bootstrap: int = 5000
    confirm: bool = True  # rerun once before calling a regression
    max_size_growth: float = 0.05  # candidate may be at most 5% larger
    max_accuracy_drop: float = 0.005  # absolute (0.5 points)
    threads: int = 1
    seed: int = 0


@dataclass
class Subject:
    """One side of the comparison: a bundle's primary artifact, or a bare artifact file."""

    label: str
    path: Path
    runner: object
    size_bytes: int
    feed: dict
    accuracy: float | None = None
    verification: str | None = None


def open_subject(path: str, threads: int, feed: dict | None = None) -> Subject:
    from .bundle import open_bundle
    from .runtimes import open_runner, runner_class
    from .selftest import selftest_feeds

    p = Path(path)
    if p.is_dir():
        m = open_bundle(p)
        if not m.usable():
            raise UsageError(f"{p} has no verified artifact to gate")
        a = m.usable()[0]
        runner = open_runner(a.runtime, p / a.path, threads, a.inputs, a.outputs, a.input_layout)
        inputs, _ = selftest_feeds(p, m)
        return Subject(f"{p.name}:{a.id}", p, runner, a.size_bytes, feed or inputs[0],
                       a.verification.accuracy, a.verification.status)
    if p.suffix == ".onnx" and p.is_file():
        from .sources.safety import check_onnx_file

        check_onnx_file(p)  # external data inside its folder, bounded inputs: before ONNX Runtime reads it
        try:
            runner = runner_class("onnxruntime")(p, threads=threads)
        except EdgekitError:
            raise
        except Exception as e:  # ONNX Runtime refuses the file: a user error about that file, in one line
            raise UsageError(f"{path}: ONNX Runtime cannot load it: {type(e).__name__}: "
                             f"{(str(e).strip().splitlines() or [''])[0][:240]}") from None
        if feed is None:
            rng = np.random.default_rng(0)
            feed = {s.name: (rng.standard_normal([max(d, 1) for d in s.shape]).astype(s.dtype) if "float" in s.dtype
                             else np.zeros([max(d, 1) for d in s.shape], s.dtype)) for s in runner.inputs}
        return Subject(p.name, p, runner, p.stat().st_size, feed)
    raise UsageError(f"{path}: not a bundle folder or an .onnx artifact")


@contextmanager
def pinned_to_one_cpu():
    """Pin to one CPU for the measurement (the last one: least likely to take interrupts)."""
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {max(before)})
    except (AttributeError, OSError):
        before = None
    try:
        yield
    finally:
        if before:
            os.sched_setaffinity(0, before)


def _segment(run, n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        run()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        run()
        out.append(time.perf_counter() - t)
    return out


def interleave(run_a, run_b, blocks: int, block_seconds: float, warmup_runs: int, segment_b=None):
    """ABBA/BAAB blocks of `block_seconds` segments, each after its own warm-up.
    `segment_b(n, warmup) -> seconds per run`, when given, times B's segments itself (a runtime in
    another process timing its own runs, e.g. TF.js in Node or a page: no transport counted).
    Returns (per-block log(median B / median A), all A times, all B times, runs per segment); seconds."""
    for _ in range(warmup_runs * 3):
        run_a(), run_b()
    t = time.perf_counter()
    _segment(run_a, 5, 0)
    n = max(5, int(block_seconds / max((time.perf_counter() - t) / 5, 1e-6)))
    log_ratios, times_a, times_b = [], [], []
    for i in range(blocks):
        seg = {"A": [], "B": []}
        for side in ("ABBA" if i % 2 == 0 else "BAAB"):
            seg[side] += (segment_b(n, warmup_runs) if side == "B" and segment_b
                          else _segment(run_a if side == "A" else run_b, n, warmup_runs))
        log_ratios.append(math.log(np.median(seg["B"]) / np.median(seg["A"])))
        times_a += seg["A"]
        times_b += seg["B"]
    return log_ratios, times_a, times_b, n


def measure(a: Subject, b: Subject, cfg: GateConfig) -> dict:
    with pinned_to_one_cpu():
        log_ratios, times_a, times_b, n = interleave(lambda: a.runner.run(a.feed), lambda: b.runner.run(b.feed),
                                                     cfg.blocks, cfg.block_seconds, cfg.warmup_runs)
    return {"log_ratios": log_ratios, "runs_per_segment": n,
            "a_ms": float(np.median(times_a) * 1e3), "b_ms": float(np.median(times_b) * 1e3)}


def bootstrap_median_ci(x: np.ndarray, confidence: float, n: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    meds = np.median(rng.choice(x, size=(n, len(x)), replace=True), axis=1)
    lo = (1 - confidence) / 2
    return float(np.quantile(meds, lo)), float(np.quantile(meds, 1 - lo))


def decide(log_ratios: list[float], cfg: GateConfig) -> dict:
    x = np.asarray(log_ratios)
    est = float(np.median(x))
    lo, hi = bootstrap_median_ci(x, cfg.confidence, cfg.bootstrap, cfg.seed)
    slower = lo > 0 and math.exp(est) - 1 >= cfg.min_effect
    faster = hi < 0 and 1 - math.exp(est) >= cfg.min_effect
    return {"ratio": math.exp(est), "ci": [math.exp(lo), math.exp(hi)], "regression": slower, "improvement": faster}


@dataclass
class GateResult:
    baseline: str
    candidate: str
    attempts: list[dict] = field(default_factory=list)
    latency_regression: bool = False
    checks: list[dict] = field(default_factory=list)  # deterministic: size, accuracy
    caveats: list[str] = field(default_factory=list)

    @property
    def regression(self) -> bool:
        return self.latency_regression or any(not c["ok"] for c in self.checks)


def deterministic_checks(a: Subject, b: Subject, cfg: GateConfig) -> list[dict]:
    checks = [{"name": "size", "ok": b.size_bytes <= a.size_bytes * (1 + cfg.max_size_growth),
               "detail": f"{a.size_bytes} -> {b.size_bytes} bytes ({b.size_bytes / a.size_bytes - 1:+.1%}; "
                         f"allowed +{cfg.max_size_growth:.0%})"}]
    if a.accuracy is not None and b.accuracy is not None:
        checks.append({"name": "accuracy", "ok": b.accuracy >= a.accuracy - cfg.max_accuracy_drop,
                       "detail": f"{a.accuracy:.4f} -> {b.accuracy:.4f} (allowed drop {cfg.max_accuracy_drop})"})
    if b.verification is not None:
        checks.append({"name": "verification", "ok": b.verification == "passed",
                       "detail": f"candidate verification: {b.verification}"})
    return checks


def _accepts(specs, feed: dict) -> bool:
    """Does a runner with these input specs (-1 = dynamic) accept this feed?"""
    if sorted(feed) != sorted(s.name for s in specs):
        return False
    return all(str(feed[s.name].dtype) == s.dtype and len(feed[s.name].shape) == len(s.shape)
               and all(d in (-1, x) for d, x in zip(s.shape, feed[s.name].shape)) for s in specs)


def run_gate(baseline: str, candidate: str, cfg: GateConfig) -> GateResult:
    a = open_subject(baseline, cfg.threads)
    b = open_subject(candidate, cfg.threads)
    if not _accepts(b.runner.inputs, a.feed):
        raise UsageError("baseline and candidate take different inputs; the gate compares artifacts of one model: "
                         f"baseline feeds {[(k, v.dtype.name, list(v.shape)) for k, v in a.feed.items()]}, candidate "
                         f"takes {[s.describe() for s in b.runner.inputs]}")
    b.feed = a.feed  # the same input on both sides
    res = GateResult(a.label, b.label, checks=deterministic_checks(a, b, cfg))
    for attempt in range(2 if cfg.confirm else 1):
        m = measure(a, b, cfg)
        d = decide(m["log_ratios"], cfg)
        res.attempts.append({**m, **d})
        if not d["regression"]:
            break
    res.latency_regression = all(t["regression"] for t in res.attempts) and len(res.attempts) == (2 if cfg.confirm else 1)
    return res


def run_baseline_file(baseline_json: str, candidate: str, cfg: GateConfig) -> GateResult:
    """Compare against stored samples (e.g. recorded on a device): not interleaved, so say so."""
    import json

    try:
        base = json.loads(Path(baseline_json).read_text())
        samples_a = np.asarray(base["samples_ms"], dtype=float)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"{baseline_json}: not a bench JSON with samples_ms ({e}); "
                         "record one with `edgekit bench BUNDLE --keep-samples --json FILE`") from None
    b = open_subject(candidate, cfg.threads)
    with pinned_to_one_cpu():
        n = max(len(samples_a), 50)
        _segment(lambda: b.runner.run(b.feed), 0, cfg.warmup_runs * 10)
        samples_b = np.asarray(_segment(lambda: b.runner.run(b.feed), n, 0)) * 1e3
    rng = np.random.default_rng(cfg.seed)
    boots = [math.log(np.median(rng.choice(samples_b, len(samples_b))) / np.median(rng.choice(samples_a, len(samples_a))))
             for _ in range(min(cfg.bootstrap, 2000))]
    est = math.log(np.median(samples_b) / np.median(samples_a))
    lo, hi = np.quantile(boots, [(1 - cfg.confidence) / 2, 1 - (1 - cfg.confidence) / 2])
    reg = lo > 0 and math.exp(est) - 1 >= cfg.min_effect
    res = GateResult(f"{baseline_json} (stored)", b.label)
    res.attempts.append({"a_ms": float(np.median(samples_a)), "b_ms": float(np.median(samples_b)),
                         "ratio": math.exp(est), "ci": [math.exp(lo), math.exp(hi)], "regression": reg,
                         "improvement": hi < 0 and 1 - math.exp(est) >= cfg.min_effect, "log_ratios": []})
    res.latency_regression = reg
    size_a = base.get("size_bytes")
    if size_a:
        res.checks.append({"name": "size", "ok": b.size_bytes <= size_a * (1 + cfg.max_size_growth),
                           "detail": f"{size_a} -> {b.size_bytes} bytes"})
    res.caveats.append("baseline-file mode: the baseline was measured at another time (maybe on another machine), "
                       "not interleaved with the candidate; machine drift and load differences are confounded with "
                       "the change. Rerun both side by side when you can.")
    env = base.get("env", {}).get("cpu", {}).get("model")
    if env:
        res.caveats.append(f"baseline CPU: {env}")
    return res


def markdown(res: GateResult, cfg: GateConfig) -> str:
    verdict = "REGRESSION" if res.regression else "pass"
    lines = [f"### edgekit gate: **{verdict}**", "",
             f"baseline `{res.baseline}` vs candidate `{res.candidate}`; {cfg.threads} thread, "
             f"{cfg.blocks} ABBA blocks, min effect {cfg.min_effect:.0%}, {cfg.confidence:.0%} bootstrap CI", "",
             "| attempt | baseline p50 ms | candidate p50 ms | ratio | CI | flagged |", "|---|---|---|---|---|---|"]
    for i, t in enumerate(res.attempts, 1):
        lines.append(f"| {i} | {t['a_ms']:.4f} | {t['b_ms']:.4f} | {t['ratio']:.3f} | "
                     f"{t['ci'][0]:.3f}-{t['ci'][1]:.3f} | {'slower' if t['regression'] else 'faster' if t['improvement'] else 'no'} |")
    lines += ["", "| check | result | detail |", "|---|---|---|"]
    lines.append(f"| latency | {'FAIL' if res.latency_regression else 'ok'} | "
                 f"{'confirmed by a rerun' if res.latency_regression and len(res.attempts) > 1 else 'within noise' if not res.latency_regression else 'flagged'} |")
    lines += [f"| {c['name']} | {'ok' if c['ok'] else 'FAIL'} | {c['detail']} |" for c in res.checks]
    lines += [f"\n> {c}" for c in res.caveats]
    return "\n".join(lines) + "\n"
