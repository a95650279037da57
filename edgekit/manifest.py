"""The bundle manifest: what each artifact is, how it was made, and how it was verified.

A bundle is a folder with `manifest.json` and the files it lists. The manifest is the only thing
a device needs to pick and check an artifact, so it is plain JSON with a schema version.
Artifacts are listed in priority order: the primary first, then fallbacks.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "edgekit.bundle/1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "float32", "int64"

    @classmethod
    def of(cls, name: str, array) -> "TensorSpec":
        return cls(name, tuple(int(d) for d in array.shape), str(array.dtype))

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), d["dtype"])

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}{list(self.shape)}"


@dataclass
class Verification:
    status: str  # "passed" | "failed" | "not-run"
    where: str  # "host-runtime" (this machine, the artifact's real runtime) | "device" | ""
    reason: str = ""  # why failed / not run
    samples: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # per output name
    tolerance: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    accuracy: float | None = None  # vs ground-truth labels, when the model has them


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
