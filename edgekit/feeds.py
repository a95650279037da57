"""A model's inputs as callers give them, checked once against the manifest's specs before any artifact
runs (names, dtypes, shapes within dynamic bounds, finite values), and a recurrent model's calls
with its state carried. Shared by Predictor, FallbackPredictor and verification; numpy only."""
from __future__ import annotations

import numpy as np

from .errors import InputError
from .manifest import TensorSpec


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
