"""`edgekit.load(bundle)` -> Predictor: run a bundle's primary artifact with checked inputs.

Needs only numpy and the artifact's runtime. Inputs are checked against the manifest (names,
shapes, dtypes) before the runtime sees them, so a mistake reads as what was expected and what
was given, not as a runtime's internal error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .bundle import open_bundle
from .errors import BundleError
from .feeds import Stream, check_inputs, stream_of  # noqa: F401 - Stream: its old home, imported from here
from .manifest import Artifact, Manifest, TensorSpec
from .runtimes import open_runner


class Predictor:
    def __init__(self, bundle_dir: Path, manifest: Manifest, artifact: Artifact, threads: int | None):
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest
        self.artifact = artifact
        self.runner = open_runner(artifact.runtime, self.bundle_dir / artifact.path, threads, artifact.inputs,
                                  artifact.outputs, artifact.input_layout)

    @property
    def active(self) -> str:
        return self.artifact.id

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.artifact.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.artifact.outputs

    def predict(self, inputs) -> dict[str, np.ndarray]:
        return self.runner.run(check_inputs(self.artifact.inputs, inputs))

    def stream(self) -> Stream:
        """A recurrent model's calls with its state carried (see Stream)."""
        return stream_of(self)


def load(bundle_dir, artifact: str | None = None, threads: int | None = None, check_hashes: bool = True,
         strict: bool = False, latency_budget_ms: float | None = None, cooldown_calls: int = 200,
         selftest: bool = True, trusted_keys=None):
    """Open a bundle and return a predictor.

    Default: a FallbackPredictor over every verified artifact in manifest order (each checked
    against its sha256 and self-test before it serves; see edgekit.fallback). With `artifact=ID`:
    a plain Predictor on exactly that artifact (the whole bundle's hashes checked first).

    trusted_keys: ed25519 public keys (PEM paths or key objects). Then the bundle must carry a valid
    signature by one of them (edgekit sign), or SignatureError: unsigned, re-signed with another key,
    or any byte of the manifest changed; every file is then checked against the signed manifest.
    """
    if trusted_keys is not None:
        from .signing import check_signed_bundle

        check_signed_bundle(bundle_dir, trusted_keys)
        check_hashes = True  # the signature vouches for the manifest; the hashes carry it to every file
    if artifact is not None:
        manifest = open_bundle(bundle_dir, check_hashes=check_hashes)
        chosen = [a for a in manifest.artifacts if a.id == artifact]
        if not chosen:
            raise BundleError(f"no artifact {artifact!r} in {bundle_dir}; it has {[a.id for a in manifest.artifacts]}")
        if chosen[0].role == "rejected":
            raise BundleError(f"artifact {artifact!r} failed verification ({chosen[0].verification.reason}); refused")
        return Predictor(Path(bundle_dir), manifest, chosen[0], threads)
    from .fallback import FallbackPolicy, FallbackPredictor

    # Per-artifact hashes are checked when each artifact is activated, so one corrupt file costs
    # that artifact, not the bundle; the manifest and the self-test file are checked here.
    manifest = open_bundle(bundle_dir, check_files=False)
    if selftest and not manifest.selftest:  # every compiled bundle has one; a manifest without it was edited
        raise BundleError(f"{bundle_dir}: the manifest has no self-test entry, so no artifact can prove itself "
                          "before serving; refused (edgekit's promise: nothing serves unchecked)",
                          hint="recompile the bundle; or load(..., selftest=False) to serve it unchecked, at your risk")
    if manifest.selftest and check_hashes:
        from .bundle import check_listed_file

        st = manifest.selftest
        check_listed_file(bundle_dir, "selftest", st["path"], st["sha256"], st["size_bytes"])
    policy = FallbackPolicy(latency_budget_ms=latency_budget_ms if latency_budget_ms is not None
                            else manifest.target.get("latency_budget_ms"), cooldown_calls=cooldown_calls,
                            selftest=selftest, strict=strict)
    return FallbackPredictor(Path(bundle_dir), manifest, threads, policy)
