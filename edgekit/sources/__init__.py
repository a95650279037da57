"""Resolve `--model SPEC` to a ModelSource.

  builtin:NAME                      a built-in model (edgekit.builtin.BUILTINS)
  path/to/file.py:factory           factory() -> (nn.Module, example_inputs) or a dict (docs/models.md)
  package.module:factory            the same, imported from an installed package
  model.onnx                        an ONNX file (external data must stay in its folder; symbolic
                                    input dims need --input NAME:SHAPE[:DTYPE])
  model.pt2                         a torch.export archive (scanned: no code-running pickles)
  + --weights state_dict.pt         weights for a factory's module, loaded with weights_only=True
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelSourceError
from .model import ModelSource

DEFAULT_MODEL = "builtin:digits"


def preflight(spec: str | None, weights: str | None = None, inputs: list[str] | None = None) -> dict | None:
    """Cheap checks before any work starts (and before any progress is printed): the file exists,
    no pickle in it would run code, ONNX external data stays in its folder, a built-in exists.
    Needs no torch; the loaders repeat the safety checks, so this is a fast path, not the guard.
    inputs: `--input NAME:SHAPE[:DTYPE]` specs (ONNX sources; symbolic dims need one). Returns an
    .onnx source's resolved input shapes ({name: (shape, dtype)}), else None."""
    from .safety import check_onnx_file, check_pickle_file, check_pt2

    spec = spec or DEFAULT_MODEL
    if inputs:
        from .input_spec import parse_inputs

        parse_inputs(inputs)  # a malformed spec is reported as such first (a PyTorch source's: at load)
    if spec.startswith("builtin:"):
        from ..builtin import BUILTINS
        from ..errors import UsageError, did_you_mean

        name = spec.split(":", 1)[1]
        if name not in BUILTINS:
            raise UsageError(f"unknown built-in model {name!r}{did_you_mean(name, list(BUILTINS))}; "
                             f"built-ins: {', '.join(BUILTINS)}")
        if weights:  # a distilled student's state dict (builtin:digits-small, builtin:minilm-l3)
            from ..builtin import takes_weights

            if not takes_weights(name):
                raise UsageError(f"builtin:{name} brings its own weights; --weights applies to "
                                 "builtin:digits-small, builtin:minilm-l3 and your own factories")
            if not Path(weights).is_file():
                raise ModelSourceError(f"weights file not found: {weights}")
            check_pickle_file(Path(weights))
        return
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".pt2", ".pt", ".pth") and not path.is_file():
        raise ModelSourceError(f"model file not found: {spec}")
    if suffix == ".pt2":
        check_pt2(path)
    if suffix in (".pt", ".pth"):
        check_pickle_file(path)
    if suffix in (".pt", ".pth"):
        raise ModelSourceError(f"{spec} holds weights only; edgekit needs code that builds the module",
                               hint=f"--model your_model.py:factory --weights {spec}")
    shapes = None
    if suffix == ".onnx":
        from .onnx_file import resolved_shapes

        shapes = resolved_shapes(check_onnx_file(path), path, inputs)  # symbolic dims need --input
    if ":" in spec and suffix not in (".onnx", ".pt2", ".pt", ".pth"):
        target = spec.rpartition(":")[0]
        if target.endswith(".py") and not Path(target).is_file():
            raise ModelSourceError(f"model file not found: {target}")
    if weights:
        if not Path(weights).is_file():
            raise ModelSourceError(f"weights file not found: {weights}")
        check_pickle_file(Path(weights))
    return shapes


def require_real_values(spec: str, shapes: dict | None, inputs: list[str] | None, verify_data: str | None) -> None:
    """An .onnx model's integer or bool inputs (token ids, a sample rate, a mode flag) decide what the
    model does: without --verify-data, compile stops instead of inventing their values (a sample-rate
    input once got a random value, took the wrong branch, and the reference crashed)."""
    if not shapes or verify_data:  # shapes: preflight's, for an .onnx source
        return
    from ..errors import UsageError
    from .input_spec import parse_inputs

    fixed = {n for n, s in parse_inputs(inputs).items() if s.value is not None}
    ints = [n for n, (_, dtype) in shapes.items() if not dtype.startswith("float") and n not in fixed]
    if ints:
        raise UsageError(f"{spec}: input(s) {ints} are {', '.join(sorted({shapes[n][1] for n in ints}))}: values such as "
                         "token ids, a sample rate or a mode flag decide what the model does, and edgekit never "
                         "invents them", hint="give real inputs: --verify-data FILE.npz (arrays named like the inputs, "
                                              f"samples on the first axis: {', '.join(shapes)}), or a fixed value for "
                                              f"a control input: --input {ints[0]}=VALUE")


def load_model(spec: str | None, weights: str | None = None, inputs: list[str] | None = None) -> ModelSource:
    """inputs: `--input` specs (edgekit.sources.input_spec): an .onnx source's shapes; a PyTorch
    source's ranges (its dynamic dims) and fixed values."""
    src = _load(spec or DEFAULT_MODEL, weights, inputs)
    if inputs and src.kind == "torch":
        from .input_spec import apply_to_torch_source

        apply_to_torch_source(src, inputs)
    return src


def _load(spec: str, weights: str | None, inputs: list[str] | None) -> ModelSource:
    if spec.startswith("builtin:"):
        from ..builtin import load_builtin

        return load_builtin(spec.split(":", 1)[1], weights)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".pt2", ".pt", ".pth") or ("/" in spec and ":" not in spec):
        if not path.exists():
            raise ModelSourceError(f"model file not found: {spec}")
        if not path.is_file():
            raise ModelSourceError(f"{spec} is not a file")
    if suffix == ".onnx":
        from .onnx_file import load_onnx

        return load_onnx(path, inputs)
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
