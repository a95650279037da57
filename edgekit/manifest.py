"""The bundle manifest: what each artifact is, how it was made, and how it was verified.

A bundle is a folder with `manifest.json` and the files it lists. The manifest is the only thing
a device needs to pick and check an artifact, so it is plain JSON with a schema version.
Artifacts are listed in priority order: the primary first, then fallbacks.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "edgekit.bundle/1"
MANIFEST = "manifest.json"

# Every name a manifest supplies is checked against these when it is read, because readers build
# file names, log names and app-package paths from them (`../..` in an id once wrote a file outside
# a package). Strict on purpose: edgekit writes only names that match.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
# A relative POSIX path of such segments: no absolute path, no `.`/`..` segment, no backslash or NUL.
PATH_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")
# Tensor names come from the user's model (ONNX allows almost anything): printable ASCII without
# quotes or backslashes, bounded ("/conv/Conv_output_0", "onnx::Gemm_0", "x:0" all pass). They are
# never used as file names as they are.
TENSOR_NAME = re.compile(r"[\x21\x23-\x26\x28-\x5b\x5d-\x7e]{1,256}")
DTYPE_NAME = re.compile(r"[a-z][a-z0-9]{1,15}")
MAX_DIM = 1 << 31


def tensor_name_ok(name) -> bool:
    """TENSOR_NAME, and no `..` path segment: a name is never a way out of a folder, even by mistake."""
    return isinstance(name, str) and bool(TENSOR_NAME.fullmatch(name)) and ".." not in name.split("/")


class ManifestError(ValueError):
    """A manifest field that is not what edgekit writes; open_bundle turns it into a BundleError."""


def check_id(value, what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ManifestError(f"{what} {value!r} is not a valid name (letters, digits, _ . + -; at most 128)")
    return value


def check_relpath(value, what: str) -> str:
    parts = value.split("/") if isinstance(value, str) else []
    if not parts or len(parts) > 8 or not all(PATH_SEGMENT.fullmatch(s) for s in parts):
        raise ManifestError(f"{what} {value!r} is not a plain relative path inside the bundle")
    return value


def _check_tensor(d) -> dict:
    if not isinstance(d, dict) or not tensor_name_ok(d.get("name")):
        raise ManifestError(f"tensor name {d.get('name') if isinstance(d, dict) else d!r} is not 1-256 printable "
                            "ASCII characters without spaces, quotes, backslashes or `..` segments")
    shape = d.get("shape")
    if not isinstance(shape, list) or len(shape) > 16 or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x < MAX_DIM for x in shape):
        raise ManifestError(f"tensor {d['name']!r}: shape {shape!r} is not a list of non-negative integers")
    if not isinstance(d.get("dtype"), str) or not DTYPE_NAME.fullmatch(d["dtype"]):
        raise ManifestError(f"tensor {d['name']!r}: dtype {d.get('dtype')!r} is not a numpy dtype name")
    dyn = d.get("dynamic")
    if dyn is not None and (not isinstance(dyn, list) or not all(
            isinstance(x, list) and len(x) == 4 and isinstance(x[0], int) and 0 <= x[0] < len(shape)
            and tensor_name_ok(x[1]) and all(isinstance(v, int) and 0 < v < MAX_DIM for v in x[2:]) and x[2] <= x[3]
            for x in dyn)):
        raise ManifestError(f"tensor {d['name']!r}: dynamic {dyn!r} is not a list of [axis, name, min, max]")
    return d


def _check_file_entry(entry, what: str) -> None:
    if not isinstance(entry, dict):
        raise ManifestError(f"{what} entry is not an object")
    check_relpath(entry.get("path"), f"{what} path")
    if not isinstance(entry.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
        raise ManifestError(f"{what} sha256 {entry.get('sha256')!r} is not 64 hex digits")
    if not isinstance(entry.get("size_bytes"), int) or entry["size_bytes"] < 0:
        raise ManifestError(f"{what} size_bytes {entry.get('size_bytes')!r} is not a non-negative integer")


def check_artifact_dict(d) -> None:
    """Raise ManifestError unless every name, path and tensor spec of one artifact entry is well formed."""
    if not isinstance(d, dict):
        raise ManifestError("an artifact entry is not an object")
    ident = check_id(d.get("id"), "artifact id")
    for k in ("runtime", "format", "precision", "role"):
        check_id(d.get(k), f"artifact {ident}: {k}")
    _check_file_entry(d, f"artifact {ident}")
    for k in ("inputs", "outputs"):
        if not isinstance(d.get(k), list) or len(d[k]) > 1024:
            raise ManifestError(f"artifact {ident}: {k} is not a list")
        for t in d[k]:
            _check_tensor(t)
    if d.get("selftest") is not None:
        _check_file_entry(d["selftest"], f"artifact {ident} self-test")
    deferred = (d.get("converter") or {}).get("deferred") if isinstance(d.get("converter"), dict) else None
    if isinstance(deferred, dict) and "engine" in deferred:  # edgekit build writes artifacts/<engine>
        check_relpath(deferred["engine"], f"artifact {ident}: deferred engine")
    if d.get("input_layout") is not None and (not isinstance(d["input_layout"], dict) or not all(
            isinstance(v, str) and v in ("NHWC", "NCHW") for v in d["input_layout"].values())):
        raise ManifestError(f"artifact {ident}: input_layout {d['input_layout']!r} is not NHWC/NCHW per input")


def check_manifest_dict(d) -> None:
    """The manifest's structure and every name in it, before any field is used."""
    if not isinstance(d, dict):
        raise ManifestError("the manifest is not a JSON object")
    if not isinstance(d.get("artifacts"), list) or len(d["artifacts"]) > 1024:
        raise ManifestError("artifacts is not a list")
    ids = [a.get("id") if isinstance(a, dict) else None for a in d["artifacts"]]
    for a in d["artifacts"]:
        check_artifact_dict(a)
    if len(set(ids)) != len(ids):
        raise ManifestError("two artifacts share one id")
    if d.get("selftest") is not None:
        _check_file_entry(d["selftest"], "selftest")
    model = d.get("model")
    if not isinstance(model, dict):
        raise ManifestError("model is not an object")
    for k in ("inputs", "outputs"):
        for t in model.get(k) or []:
            _check_tensor(t)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # a dynamic axis holds its opt size (the example's)
    dtype: str  # numpy dtype name, e.g. "float32", "int64"
    # Axes whose size varies between calls: ((axis, dim name, min, max), ...); empty: static.
    dynamic: tuple = ()

    @classmethod
    def of(cls, name: str, array, ranges: dict | None = None) -> "TensorSpec":
        """ranges: {axis: (dim name, min, max)} of the input's dynamic axes."""
        return cls(name, tuple(int(d) for d in array.shape), str(array.dtype),
                   tuple((a, *r) for a, r in sorted((ranges or {}).items())))

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                **({"dynamic": [list(d) for d in self.dynamic]} if self.dynamic else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), d["dtype"], tuple(tuple(x) for x in d.get("dynamic") or ()))

    def ranges(self) -> dict[int, tuple[int, int]]:
        return {int(a): (int(lo), int(hi)) for a, _, lo, hi in self.dynamic}

    def accepts(self, shape) -> bool:
        from .sources.dynamic import accepts

        return accepts(tuple(shape), self.shape, self.ranges())

    def describe(self) -> str:
        if not self.dynamic:
            return f"{self.name}: {self.dtype}{list(self.shape)}"
        dyn = {int(a): f"{n}:{lo}..{hi}" for a, n, lo, hi in self.dynamic}
        return f"{self.name}: {self.dtype}[{', '.join(dyn.get(i, str(s)) for i, s in enumerate(self.shape))}]"


@dataclass
class Verification:
    status: str  # "passed" | "failed" | "not-run"
    where: str  # "host-runtime" (this machine, the artifact's real runtime) | "device" | "aarch64-emulated" | ""
    reason: str = ""  # why failed / not run
    samples: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # per output name
    tolerance: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    accuracy: float | None = None  # vs ground-truth labels, when the model has them
    # What this verification cannot say (a degenerate reference; made-up inputs for a quantized artifact).
    caveats: list[str] = field(default_factory=list)
    # A stateful model: {"steps", "metrics"} of the artifact streamed over the reference's sequence.
    sequence: dict[str, Any] | None = None
    # A model with dynamic dims: [{"point": {dim: size}, "label", "samples", "status", "metrics"}] of
    # the artifact at each other verification shape (the main metrics are at the opt shape).
    shapes: list[dict[str, Any]] | None = None
    # What ran it when not this host: the device's CPU, e.g. "cortex-a76 (QEMU user mode 7.2.22)".
    device: str = ""


@dataclass
class Artifact:
    id: str  # unique in the bundle, e.g. "onnxruntime-fp32"
    role: str  # "primary" | "fallback" | "rejected" | "on-device" (built for another machine, not yet verified there)
    format: str  # "onnx", "tflite", ...
    runtime: str  # key in edgekit.runtimes.RUNTIMES
    precision: str  # "fp32", "fp16", "int8", ...
    path: str  # relative to the bundle folder
    sha256: str
    size_bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    verification: Verification
    converter: dict[str, Any] = field(default_factory=dict)  # name, options, what it did
    toolchain: dict[str, str | None] = field(default_factory=dict)  # versions that built it
    # Set only for an artifact of a different model (compile --fallback-model): its provenance and
    # its own self-test vectors (the bundle's belong to the main model).
    model: dict[str, Any] | None = None
    selftest: dict[str, Any] | None = None
    # Inputs the artifact file takes channel-last, e.g. {"image": "NHWC"} (compile --layout nhwc);
    # the Python runners transpose the model's NCHW arrays; an app feeds NHWC directly.
    input_layout: dict[str, str] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Artifact":
        d = dict(d)
        d["inputs"] = [TensorSpec.from_dict(t) for t in d["inputs"]]
        d["outputs"] = [TensorSpec.from_dict(t) for t in d["outputs"]]
        d["verification"] = Verification(**d["verification"])
        return cls(**d)


ROLE_RANK = {"primary": 0, "fallback": 0, "on-device": 1, "rejected": 2}  # listing order: usable first


def assign_roles(artifacts: list[Artifact], rank: dict[str, int]) -> list[Artifact]:
    """Roles from verification: failed -> rejected, not-run -> on-device (waits for `edgekit build`),
    passed -> primary (the best-ranked) or fallback; sorts the list by role, then rank. Returns the
    verified artifacts, best first."""
    verified = sorted((a for a in artifacts if a.verification.status == "passed"), key=lambda a: rank[a.id])
    for a in artifacts:
        a.role = {"failed": "rejected", "not-run": "on-device"}.get(
            a.verification.status, "primary" if verified and a is verified[0] else "fallback")
    artifacts.sort(key=lambda a: (ROLE_RANK[a.role], rank[a.id]))
    return verified


def degraded(verified: list[Artifact], preferred: str, on_device: list[str]) -> bool:
    """The primary is not the profile's preferred artifact, and not because that one waits for the device."""
    return bool(verified) and verified[0].id != preferred and preferred not in on_device


@dataclass
class Manifest:
    model: dict[str, Any]  # name, source, sha256, task, labels, preprocessing, inputs, outputs
    target: dict[str, Any]  # profile name, tolerances, how the primary was chosen
    artifacts: list[Artifact]
    failed_candidates: list[dict[str, Any]] = field(default_factory=list)
    selftest: dict[str, Any] | None = None  # {"path", "sha256", "samples"}: inputs + expected outputs
    edgekit_version: str = ""
    created: str = ""
    schema: str = SCHEMA
    complete: bool = False  # set only by the atomic writer, as the last thing it does

    def to_json(self) -> str:
        d = asdict(self)
        d["artifacts"] = [a.to_dict() for a in self.artifacts]
        return json.dumps(d, indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        check_manifest_dict(d)
        d = dict(d)
        d["artifacts"] = [Artifact.from_dict(a) for a in d["artifacts"]]
        return cls(**d)

    @classmethod
    def read(cls, bundle_dir: Path) -> "Manifest":
        return cls.from_dict(json.loads((Path(bundle_dir) / MANIFEST).read_text()))

    def usable(self) -> list[Artifact]:
        """Artifacts a predictor may run, in priority order (rejected ones never; on-device ones only
        after `edgekit build` has verified them on the device and made them primary/fallback)."""
        return [a for a in self.artifacts if a.role in ("primary", "fallback")]
