"""edgekit: compile a trained model for edge devices, verify every artifact on its real runtime,
benchmark it honestly.

`import edgekit` needs numpy only; `edgekit.load(bundle)` needs numpy + the artifact's runtime;
`edgekit.compile(...)` (edgekit.api) needs the target's toolchains, as `edgekit compile` does.
"""
from __future__ import annotations

__version__ = "0.1.0"


def load(bundle_dir, artifact=None, threads=None, **options):
    """Return a predictor for a compiled bundle: primary artifact with fallbacks (see edgekit.predictor.load)."""
    from .predictor import load as _load

    return _load(bundle_dir, artifact=artifact, threads=threads, **options)


def compile(model=None, example_inputs=None, target="cpu", precision=None, out=None, **options):
    """Compile a model for a target into a verified Bundle (see edgekit.api.compile); raises EdgekitError."""
    from .api import compile as _compile

    return _compile(model, example_inputs, target, precision, out, **options)


def open(bundle_dir):
    """A compiled bundle on disk as an edgekit.api.Bundle (its hashes checked)."""
    from .api import Bundle

    return Bundle(bundle_dir)


__all__ = ["compile", "load", "open", "__version__"]
