"""Resolve `--model SPEC` to a ModelSource.

  builtin:NAME                      a built-in model (edgekit.builtin.BUILTINS)
  path/to/file.py:factory           factory() -> (nn.Module, example_inputs) or a dict (see README)
  package.module:factory            the same, imported from an installed package
  model.onnx                        an ONNX file (external data must stay in its folder)
  model.pt2                         a torch.export archive (scanned: no code-running pickles)
  + --weights state_dict.pt         weights for a factory's module, loaded with weights_only=True
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelSourceError
from .model import ModelSource

DEFAULT_MODEL = "builtin:digits"


def load_model(spec: str | None, weights: str | None = None) -> ModelSource:
    spec = spec or DEFAULT_MODEL
    if spec.startswith("builtin:"):
        from ..builtin import load_builtin

        return load_builtin(spec.split(":", 1)[1])
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".pt2", ".pt", ".pth") or ("/" in spec and ":" not in spec):
        if not path.exists():
            raise ModelSourceError(f"model file not found: {spec}")
        if not path.is_file():
            raise ModelSourceError(f"{spec} is not a file")
    if suffix == ".onnx":
        from .onnx_file import load_onnx

        return load_onnx(path)
    if suffix == ".pt2":
        from .exported import load_pt2

        return load_pt2(path)
    if suffix in (".pt", ".pth"):
        from .safety import load_state_dict

        load_state_dict(path)  # refuses code-running pickles with a clear error, runs nothing
        raise ModelSourceError(
            f"{spec} holds weights only; edgekit needs code that builds the module",
            hint=f"--model your_model.py:factory --weights {spec}")
    if ":" in spec:
        from .factory import load_factory

        return load_factory(spec, weights)
    raise ModelSourceError(
        f"cannot tell what kind of model {spec!r} is",
        hint="use builtin:NAME, file.py:factory, package.module:factory, a .onnx or a .pt2 file")
