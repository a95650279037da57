"""edgekit: compile a trained model for edge devices, verify every artifact on its real runtime,
benchmark it honestly.

`import edgekit` needs numpy only; `edgekit.load(bundle)` needs numpy + the artifact's runtime.
"""
from __future__ import annotations

__version__ = "0.1.0"


def load(bundle_dir, artifact=None, threads=None, check_hashes=True):
    """Return a Predictor for a compiled bundle (see edgekit.predictor.load)."""
    from .predictor import load as _load

    return _load(bundle_dir, artifact=artifact, threads=threads, check_hashes=check_hashes)


__all__ = ["load", "__version__"]
