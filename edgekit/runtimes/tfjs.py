"""TF.js graph models (`model.json` + weight shards) run by @tensorflow/tfjs in Node.

The pure-JS package (no tfjs-node: it downloads a native binary at install time and failed here)
on its `wasm` backend (XNNPACK kernels in WebAssembly: what a browser without a usable GPU runs;
16x faster than the pure-JS `cpu` backend on MiniLM here, 208 vs 3438 ms), or another one named
by EDGEKIT_TFJS_BACKEND (cpu). One Node process per runner answers
one JSON line per request (edgekit/runtimes/tfjs_runner.js, the same code the Chromium page runs).
TF.js has no int64: token ids go in as int32 after a range check, never wrapped. Latency for
`bench` is timed inside Node (performance.now() around execute + reading the outputs), so the
pipe between Python and Node is not counted.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from .. import deps
from ..errors import InputError
from ..locate import node_modules
from .base import NamedByManifest

RUNNER_JS = Path(__file__).with_name("tfjs_runner.js")
DEFAULT_BACKEND = "wasm"
JS_DTYPES = {"float32": "float32", "float64": "float32", "int64": "int32", "int32": "int32", "bool": "bool"}


def encode(name: str, a: np.ndarray) -> dict:
    """A numpy feed as the JSON the JS side turns into a tensor (TF.js's dtype, checked casts)."""
    a = np.asarray(a)
    js = JS_DTYPES.get(a.dtype.name)
    if js is None:
        raise InputError(f"input {name!r}: TF.js takes float32, int32 or bool, not {a.dtype}")
    if js == "int32" and a.dtype != np.int32 and a.size:
        info = np.iinfo(np.int32)
        if a.min() < info.min or a.max() > info.max:
            raise InputError(f"input {name!r}: values {a.min()}..{a.max()} do not fit TF.js's int32")
    arr = np.ascontiguousarray(a.astype({"float32": np.float32, "int32": np.int32, "bool": np.uint8}[js]))
    return {"dtype": js, "shape": list(arr.shape), "data": base64.b64encode(arr.tobytes()).decode()}


def decode(spec: dict) -> np.ndarray:
    dtype = {"float32": np.float32, "int32": np.int32, "bool": np.uint8}[spec["dtype"]]
    return np.frombuffer(base64.b64decode(spec["data"]), dtype=dtype).reshape(spec["shape"]).copy()


class JsRunner(NamedByManifest):
    """What the Node and the Chromium runners share: JSON requests, named tensors, in-runtime timing."""

    def _request(self, req: dict) -> dict:
        raise NotImplementedError

    def _feeds(self, feeds: dict) -> dict:
        missing = [t.name for t in self._inputs if t.name not in feeds]
        if missing:  # shapes are checked by TF.js itself (NHWC inputs arrive transposed)
            raise InputError(f"missing inputs {missing}; the model takes {[t.name for t in self._inputs]}")
        return {n: encode(n, a) for n, a in feeds.items()}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        answer = self._request({"feeds": self._feeds(feeds)})
        return {n: decode(s) for n, s in answer["outputs"].items()}

    def timed_runs(self, feeds: dict, runs: int, min_time_s: float) -> list[float]:
        """`runs` (and >= min_time_s of) latency samples timed inside the JS runtime, in ms. A run
        under 2 ms is timed in groups (browsers round the clock); `runs_per_sample` says how many."""
        answer = self._request({"feeds": self._feeds(feeds), "runs": runs, "min_time_ms": 1e3 * min_time_s})
        self.runs_per_sample = answer.get("runs_per_sample", 1)
        return answer["times_ms"]

    def artifact_io(self) -> dict | None:
        changed = {t.name: "int32" for t in self._inputs if JS_DTYPES.get(t.dtype, t.dtype) != t.dtype}
        return {"inputs_cast": changed, "why": "TF.js has no int64; values are range-checked"} if changed else None


class TfjsNodeRunner(JsRunner):
    runtime = "tfjs"
    toolchain = "node-tfjs"

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(path, threads)
        deps.require("node-tfjs", "running TF.js graph models in Node")
        if not (self.path / "model.json").is_file():
            raise FileNotFoundError(f"{self.path}: no model.json (not a TF.js graph model folder)")
        self.backend = os.environ.get("EDGEKIT_TFJS_BACKEND", DEFAULT_BACKEND)
        # tfjs-backend-wasm in Node runs without threads (no SharedArrayBuffer workers); threads does not apply.
        self.proc = subprocess.Popen(["node", str(RUNNER_JS), str(self.path), str(node_modules()), self.backend],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()[-2000:] if self.proc.poll() is not None else ""
            raise RuntimeError(f"the TF.js Node runner exited (code {self.proc.poll()}): {err.strip()}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"TF.js in Node: {answer['error']}")
        return answer

    def _request(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 — interpreter shutdown
            pass


RUNNER = TfjsNodeRunner
