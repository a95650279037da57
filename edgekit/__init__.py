"""edgekit: compile a trained model for edge devices, verify every artifact on its real runtime,
benchmark it honestly.

`import edgekit` needs numpy only; `edgekit.load(bundle)` needs numpy + the artifact's runtime.
"""
from __future__ import annotations

__version__ = "0.1.0"


def load(bundle_dir, artifact=None, threads=None, **options):
    """Return a predictor for a compiled bundle: primary artifact with fallbacks (see edgekit.predictor.load)."""
    from .predictor import load as _load

    return _load(bundle_dir, artifact=artifact, threads=threads, **options)


__all__ = ["load", "__version__"]
