"""The runtime fallback: a predictor that keeps answering when its primary artifact fails.

Artifacts are tried in the manifest's order (primary, then fallbacks). An artifact becomes active
only after its own file matches its sha256, it loads on its runtime, and it reproduces the
bundle's self-test vectors. While serving, the predictor switches to the next artifact when the
active one raises or returns non-finite values on an input that a later artifact answers (that
answer is returned, so callers see correct outputs), or when its median latency over a window
exceeds the budget.

The input can be at fault too: a NaN/Inf input is refused before anything runs (InputError), and
an input on which *every* artifact fails is refused the same way with nothing blamed or dropped —
one bad request must not exhaust the chain and break serving for every later one.

Every switch is visible: `events` (time, from, to, reason), `counters`, `active`. A switch sticks
for `cooldown_calls` calls; then the better artifact is re-probed (circuit breaker) and restored
only if it passes its self-test again. `strict=True` raises instead of switching.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle import check_listed_file
from .errors import ArtifactFailed, BundleError, EdgekitError, InputError, ToolchainMissing
from .manifest import Artifact, Manifest
from .feeds import check_inputs, stream_of

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

    def stream(self):
        """A recurrent model's calls with its state carried, across artifact switches too (see
        edgekit.predictor.Stream)."""
        return stream_of(self)

    def predict(self, inputs) -> dict[str, np.ndarray]:
        feeds = check_inputs(self.candidates[0].inputs, inputs)  # NaN/Inf inputs are refused here
        self._maybe_reprobe()
        failed: list[tuple[int, str]] = []  # (candidate index, why) for this request
        i = self._index
        while i is not None:
            art = self.candidates[i]
            t = time.perf_counter()
            try:
                out = self._runners[art.id].run(feeds)
                bad = [k for k, v in out.items() if not np.all(np.isfinite(v))]
                if bad:
                    raise FloatingPointError(f"non-finite values in output(s) {bad}")
            except Exception as e:  # a runtime's own error type is whatever it is
                why = (f"{'non-finite output' if isinstance(e, FloatingPointError) else 'raised'}: "
                       f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
                self.counters[f"failed:{art.id}"] += 1
                if self.policy.strict:
                    raise ArtifactFailed(f"{art.id}: {why} (strict mode: no fallback)") from None
                failed.append((i, why))
                i = self._next_ready(i + 1)  # try the next artifact on this same input
                continue
            if failed:  # another artifact answered this input: the ones that failed on it are to blame
                self._blame(failed, answered_by=i)
            ms = (time.perf_counter() - t) * 1e3
            self.counters[f"calls:{art.id}"] += 1
            self._calls_since_switch += 1
            self._latency.append(ms)
            budget = self.policy.latency_budget_ms
            if budget and len(self._latency) == self._latency.maxlen and float(np.median(self._latency)) > budget:
                self._too_slow(f"too slow: median {np.median(self._latency):.2f} ms over the last "
                               f"{len(self._latency)} calls > budget {budget} ms")
            return out
        # Every artifact failed on this very input: the input is at fault, not the artifacts. None is
        # dropped, so the next valid request is served as before.
        self.counters["input_failures"] += 1
        raise InputError(f"every artifact ({len(failed)}) failed on this input, so the input is refused and no "
                         "artifact is blamed: " + "; ".join(f"{self.candidates[j].id}: {w}" for j, w in failed)[:800],
                         hint="check the input's values (range, scale, preprocessing) against the model's inputs: "
                              + ", ".join(s.describe() for s in self.candidates[0].inputs))

    # -- internals ------------------------------------------------------------------------------
    def _event(self, frm: str | None, to: str | None, reason: str) -> None:
        self.events.append({"time": time.time(), "from": frm, "to": to, "reason": reason})
        self.counters["switches"] += frm is not None and to is not None and frm != to

    def _try_load(self, art: Artifact, require_selftest: bool = False) -> str | None:
        """None if the artifact is ready to serve, else why not. require_selftest: even when the
        policy skips self-tests (re-probing a dropped artifact never does)."""
        from .runtimes import open_runner
        from .selftest import check_runner

        try:
            path = check_listed_file(self.bundle_dir, art.id, art.path, art.sha256, art.size_bytes)
            runner = open_runner(art.runtime, path, self.threads, art.inputs, art.outputs, art.input_layout)
            if self.policy.selftest or require_selftest:
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
        nxt = self._next_ready(start)
        if nxt is not None:
            self._make_active(nxt, reason)
            return
        if self._missing and len(self._missing) == len(self.candidates) - start:
            first = self._missing[0]
            raise ToolchainMissing("no runtime for any artifact of this bundle is installed: "
                                   + "; ".join(m.message for m in self._missing), hint=first.hint)
        raise BundleError("no artifact of this bundle can serve: " +
                          "; ".join(e["reason"] for e in self.events if e["to"] is None)[-600:])

    def _next_ready(self, start: int) -> int | None:
        """Index of the first artifact from `start` on that is loaded and self-tested (loading it now
        if needed), or None. Strict mode raises at the first one that cannot serve."""
        for j in range(start, len(self.candidates)):
            art = self.candidates[j]
            if art.id in self._runners:
                return j
            why = self._try_load(art)
            if why is None:
                return j
            self.counters[f"unusable:{art.id}"] += 1
            self._event(art.id, None, f"skipped: {why}")
            if self.policy.strict:
                raise ArtifactFailed(f"{art.id}: {why} (strict mode: no fallback)")
        return None

    def _make_active(self, i: int, reason: str) -> None:
        prev = self.active if self._index >= 0 else None
        self._index, self._calls_since_switch = i, 0
        self._latency.clear()
        self._event(prev, self.candidates[i].id, reason)

    def _blame(self, failed: list[tuple[int, str]], answered_by: int) -> None:
        """The artifacts that failed on an input another one answered are dropped (reloaded and
        self-tested again on re-probe); the one that answered becomes active."""
        prev = self.active
        for j, why in failed:
            self._runners.pop(self.candidates[j].id, None)
            self._event(self.candidates[j].id, None, why)
        self._make_active(answered_by, f"fallback after {prev}: {failed[0][1]}")

    def _too_slow(self, why: str) -> None:
        """Latency over budget: move to the next ready artifact, if there is one (the slow one still
        answers correctly, so with no other it keeps serving)."""
        if self.policy.strict:
            raise ArtifactFailed(f"{self.active}: {why} (strict mode: no fallback)")
        nxt = self._next_ready(self._index + 1)
        if nxt is None:
            self._event(self.active, self.active, f"{why}; no other artifact can serve, so it stays")
            self._latency.clear()
            return
        self._blame([(self._index, why)], answered_by=nxt)

    def _maybe_reprobe(self) -> None:
        if self._index == 0 or self._calls_since_switch < self.policy.cooldown_calls:
            return
        for i in range(self._index):  # a better artifact may have recovered
            art = self.candidates[i]
            why = self._try_load(art, require_selftest=True)  # re-admitted only by passing it again
            if why is None:
                self._make_active(i, "re-probe passed: restored")
                return
            self._event(art.id, None, f"re-probe failed: {why}")
        self._calls_since_switch = 0
