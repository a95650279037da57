"""The runtime fallback: a predictor that keeps answering when its primary artifact fails.

Artifacts are tried in the manifest's order (primary, then fallbacks). An artifact becomes active
only after its own file matches its sha256, it loads on its runtime, and it reproduces the
bundle's self-test vectors. While serving, the predictor switches to the next artifact when the
active one raises, returns non-finite values, or its median latency over a window exceeds the
budget; the request that failed is answered by the fallback, so callers see correct outputs.

Every switch is visible: `events` (time, from, to, reason), `counters`, `active`. A switch sticks
for `cooldown_calls` calls; then the better artifact is re-probed (circuit breaker) and
restored if it passes again. `strict=True` raises instead of switching.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle import check_listed_file
from .errors import ArtifactFailed, BundleError, EdgekitError, ToolchainMissing
from .manifest import Artifact, Manifest
from .predictor import check_inputs

__all__ = ["ArtifactFailed", "FallbackPolicy", "FallbackPredictor"]


@dataclass(frozen=True)
class FallbackPolicy:
    latency_budget_ms: float | None = None
    window: int = 20  # calls whose median latency is compared with the budget
    cooldown_calls: int = 200  # calls on a fallback before the better artifact is re-probed
    selftest: bool = True
    strict: bool = False


class FallbackPredictor:
    def __init__(self, bundle_dir: Path, manifest: Manifest, threads: int | None, policy: FallbackPolicy):
        self.bundle_dir, self.manifest, self.threads, self.policy = Path(bundle_dir), manifest, threads, policy
        self.candidates: list[Artifact] = manifest.usable()
        if not self.candidates:
            raise BundleError(f"{bundle_dir} holds no verified artifact (all were rejected); see its manifest")
        self.events: list[dict] = []
        self.counters: Counter = Counter()
        self._runners: dict[str, object] = {}
        self._latency: deque = deque(maxlen=policy.window)
        self._calls_since_switch = 0
        self._missing: list[ToolchainMissing] = []  # runtimes this machine lacks, for the final error
        self._index = -1
        self._activate_from(0, reason="load")

    # -- public ---------------------------------------------------------------------------------
    @property
    def active(self) -> str:
        return self.candidates[self._index].id

    @property
    def artifact(self) -> Artifact:
        return self.candidates[self._index]

    @property
    def inputs(self):
        return self.artifact.inputs

    @property
    def outputs(self):
        return self.artifact.outputs

    def predict(self, inputs) -> dict[str, np.ndarray]:
        feeds = check_inputs(self.candidates[0].inputs, inputs)
        self._maybe_reprobe()
        while True:
            art = self.candidates[self._index]
            t = time.perf_counter()
            try:
                out = self._runners[art.id].run(feeds)
                bad = [k for k, v in out.items() if not np.all(np.isfinite(v))]
                if bad:
                    raise FloatingPointError(f"non-finite values in output(s) {bad}")
            except Exception as e:  # a runtime's own error type is whatever it is
                self.counters[f"failed:{art.id}"] += 1
                self._switch_away(f"{'non-finite output' if isinstance(e, FloatingPointError) else 'raised'}: "
                                  f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
                continue  # answer this request with the fallback
            ms = (time.perf_counter() - t) * 1e3
            self.counters[f"calls:{art.id}"] += 1
            self._calls_since_switch += 1
            self._latency.append(ms)
            budget = self.policy.latency_budget_ms
            if budget and len(self._latency) == self._latency.maxlen and float(np.median(self._latency)) > budget:
                self._switch_away(f"too slow: median {np.median(self._latency):.2f} ms over the last "
                                  f"{len(self._latency)} calls > budget {budget} ms")
            return out

    # -- internals ------------------------------------------------------------------------------
    def _event(self, frm: str | None, to: str | None, reason: str) -> None:
        self.events.append({"time": time.time(), "from": frm, "to": to, "reason": reason})
        self.counters["switches"] += frm is not None and to is not None and frm != to

    def _try_load(self, art: Artifact) -> str | None:
        """None if the artifact is ready to serve, else why not."""
        from .runtimes import open_runner
        from .selftest import check_runner

        try:
            path = check_listed_file(self.bundle_dir, art.id, art.path, art.sha256, art.size_bytes)
            runner = open_runner(art.runtime, path, self.threads, art.inputs, art.outputs, art.input_layout)
            if self.policy.selftest and (art.selftest or self.manifest.selftest):  # none: nothing to re-check
                _metrics, fails = check_runner(runner, self.bundle_dir, self.manifest, art)
                if fails:
                    return "self-test failed: " + "; ".join(fails)
        except EdgekitError as e:
            if isinstance(e, ToolchainMissing):
                self._missing.append(e)
            return f"{type(e).__name__}: {e.message}" + (f" ({e.hint})" if e.hint else "")
        except Exception as e:
            return f"failed to load: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        self._runners[art.id] = runner
        return None

    def _activate_from(self, start: int, reason: str) -> None:
        prev = self.active if self._index >= 0 else None
        for i in range(start, len(self.candidates)):
            art = self.candidates[i]
            why = self._try_load(art) if art.id not in self._runners else None
            if why is None:
                self._index, self._calls_since_switch = i, 0
                self._latency.clear()
                self._event(prev, art.id, reason)
                return
            self.counters[f"unusable:{art.id}"] += 1
            self._event(art.id, None, f"skipped: {why}")
            if self.policy.strict:
                raise ArtifactFailed(f"{art.id}: {why} (strict mode: no fallback)")
        if self._missing and len(self._missing) == len(self.candidates) - start:
            first = self._missing[0]
            raise ToolchainMissing("no runtime for any artifact of this bundle is installed: "
                                   + "; ".join(m.message for m in self._missing), hint=first.hint)
        raise BundleError("no artifact of this bundle can serve: " +
                          "; ".join(e["reason"] for e in self.events if e["to"] is None)[-600:])

    def _switch_away(self, why: str) -> None:
        art = self.candidates[self._index]
        if self.policy.strict:
            raise ArtifactFailed(f"{art.id}: {why} (strict mode: no fallback)")
        self._runners.pop(art.id, None)  # a failed runner is reloaded (and re-checked) on re-probe
        self._event(art.id, None, why)
        self._activate_from(self._index + 1, reason=f"fallback after {art.id}: {why}")

    def _maybe_reprobe(self) -> None:
        if self._index == 0 or self._calls_since_switch < self.policy.cooldown_calls:
            return
        for i in range(self._index):  # a better artifact may have recovered
            art = self.candidates[i]
            why = self._try_load(art)
            if why is None:
                frm = self.active
                self._index, self._calls_since_switch = i, 0
                self._latency.clear()
                self._event(frm, art.id, "re-probe passed: restored")
                return
            self._event(art.id, None, f"re-probe failed: {why}")
        self._calls_since_switch = 0
