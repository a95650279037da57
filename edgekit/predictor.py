"""`edgekit.load(bundle)` -> Predictor: run a bundle's primary artifact with checked inputs.

Needs only numpy and the artifact's runtime. Inputs are checked against the manifest (names,
shapes, dtypes) before the runtime sees them, so a mistake reads as what was expected and what
was given, not as a runtime's internal error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .bundle import open_bundle
from .errors import BundleError, InputError
from .manifest import Artifact, Manifest, TensorSpec
from .runtimes import open_runner


def check_inputs(specs: list[TensorSpec], inputs) -> dict[str, np.ndarray]:
    """Accept a dict by name, a list/tuple in order, or one array for a one-input model."""
    expected = ", ".join(s.describe() for s in specs)
    if isinstance(inputs, dict):
        feeds = dict(inputs)
    elif isinstance(inputs, (list, tuple)):
        if len(inputs) != len(specs):
            raise InputError(f"got {len(inputs)} inputs, the model takes {len(specs)}: {expected}")
        feeds = {s.name: x for s, x in zip(specs, inputs)}
    elif len(specs) == 1:
        feeds = {specs[0].name: inputs}
    else:
        raise InputError(f"the model takes {len(specs)} inputs; pass a dict or a list: {expected}")
    names = [s.name for s in specs]
    missing = [n for n in names if n not in feeds]
    extra = [n for n in feeds if n not in names]
    if missing or extra:
        raise InputError(f"input names do not match: missing {missing}, unexpected {extra}; expected {expected}")
    out = {}
    for s in specs:
        x = feeds[s.name]
        if not isinstance(x, np.ndarray):
            raise InputError(f"input {s.name!r} must be a numpy array, got {type(x).__name__}; expected {s.describe()}")
        if str(x.dtype) != s.dtype:
            raise InputError(f"input {s.name!r} has dtype {x.dtype}, expected {s.dtype} "
                             f"(convert with .astype(np.{s.dtype}))")
        if not s.accepts(x.shape):
            raise InputError(f"input {s.name!r} has shape {list(x.shape)}, expected "
                             + (str(list(s.shape)) if not s.dynamic else s.describe().split(": ", 1)[1]))
        if x.dtype.kind in "fc" and not np.all(np.isfinite(x)):
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            raise InputError(f"input {s.name!r} holds {bad} NaN or infinite value(s); no model output is meaningful "
                             "for them, so the request is refused before any artifact runs (and none is blamed)")
        out[s.name] = np.ascontiguousarray(x)
    return out


class Stream:
    """Calls of a recurrent model with its state carried between them: `step(inputs)` takes the
    model's other inputs, feeds the previous call's state outputs back (zeros at the start) and
    returns every output. The state is the model's, not an artifact's: when a FallbackPredictor
    switches artifacts mid-stream, the next artifact continues from the same state.

        s = edgekit.load(bundle).stream()
        for x in frames:
            y = s.step({"x": x})["y"]
        s.reset()                      # a new sequence
    """

    def __init__(self, run, inputs: list[TensorSpec], state: dict[str, str]):
        """run(feeds) -> outputs: a predictor's predict, a runner's run (verification streams artifacts
        with this class too) or the reference model; inputs: the model's input specs."""
        self.run, self.state_map = run, dict(state)
        self._specs = {s.name: s for s in inputs}
        self.reset()

    def reset(self) -> None:
        self.state = {inp: np.zeros(self._specs[inp].shape, self._specs[inp].dtype) for inp in self.state_map.values()}

    def step(self, inputs: dict) -> dict[str, np.ndarray]:
        carried = [k for k in inputs if k in self.state]
        if carried:
            raise InputError(f"input(s) {carried} are the model's state, carried by the stream; pass only "
                             f"{[n for n in self._specs if n not in self.state]} (reset() starts a new sequence)")
        out = self.run({**inputs, **self.state})
        self.state = {inp: np.asarray(out[o]).astype(self._specs[inp].dtype) for o, inp in self.state_map.items()}
        return out


def stream_of(predictor) -> Stream:
    state = predictor.manifest.model.get("state")
    if not state:
        raise InputError(f"{predictor.manifest.model.get('name')} has no explicit state (a factory's 'state'), so "
                         "there is nothing to carry between calls; call predict()")
    return Stream(predictor.predict, predictor.inputs, state)


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
                          "before serving; refused (the README's promise: nothing serves unchecked)",
                          hint="recompile the bundle; or load(..., selftest=False) to serve it unchecked, at your risk")
    if manifest.selftest and check_hashes:
        from .bundle import check_listed_file

        st = manifest.selftest
        check_listed_file(bundle_dir, "selftest", st["path"], st["sha256"], st["size_bytes"])
    policy = FallbackPolicy(latency_budget_ms=latency_budget_ms if latency_budget_ms is not None
                            else manifest.target.get("latency_budget_ms"), cooldown_calls=cooldown_calls,
                            selftest=selftest, strict=strict)
    return FallbackPredictor(Path(bundle_dir), manifest, threads, policy)
