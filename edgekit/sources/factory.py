"""`file.py:factory` and `package.module:factory` model sources.

factory() returns either `(module, example_inputs)` or a dict with keys:
  model, example_inputs                       required
  input_names, output_names                   names for the artifact's tensors
  task ("classification"|"embedding"|...), labels, preprocessing (dict: layout, mean, std, ...)
  verification_inputs [, verification_labels] held-out samples (never the calibration ones)
  calibration_inputs                          representative samples for quantization
  dynamic_shapes                              dims that vary, with bounds: {input: {axis: (name, min, max)}},
                                              e.g. {"ids": {1: ("seq", 1, 128)}, "mask": {1: ("seq", 1, 128)}}
                                              (one name = one dim); the example sits at the size to optimize for
  input_specs                                 the same as `--input` lines: ["ids:1x[1..128]:int64", "sr=16000"]
  state                                       {output: input} a recurrent model carries between calls
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from ..errors import ModelSourceError
from .model import ModelSource, as_sample, random_like

VERIFY_RANDOM_SAMPLES = 16


def module_sha256(module) -> str:
    """Identify a module by its weights (names, dtypes, shapes, bytes), order-independent."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        a = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{a.dtype}:{tuple(t.shape)}".encode())
        h.update(a.view(torch.uint8).numpy().tobytes())  # raw bytes: works for every dtype
    return h.hexdigest()


def _import_target(target: str):
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ModelSourceError(f"model file not found: {target}")
        name = f"edgekit_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.parent.resolve()))  # let the file import its neighbours
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            _user_code_failed(f"importing {target}", e)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        raise ModelSourceError(f"cannot import {target!r}: {e}",
                               hint="use path/to/file.py:factory for a file, or install the package") from None


def _user_code_failed(what: str, e: Exception):
    import traceback

    traceback.print_exc()  # into the step's log file
    raise ModelSourceError(f"{what} raised {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}",
                           hint="the full traceback is in the compile's logs/prepare.log") from None


def _check_like(samples: list, example: dict, what: str) -> None:
    for i, s in enumerate(samples):
        for k, a in s.items():
            if a.shape != example[k].shape or a.dtype != example[k].dtype:
                raise ModelSourceError(f"{what}[{i}] input {k!r} is {a.dtype}{list(a.shape)}; the example input is "
                                       f"{example[k].dtype}{list(example[k].shape)} (held-out and calibration samples have the example's shape; dynamic dims are "
                                       "verified at their other sizes on crops of these)")


def _float_dtype(module) -> str | None:
    for p in module.parameters():
        if p.dtype.is_floating_point:  # numpy has no bfloat16: such a model's float inputs stay as given
            return str(p.dtype).replace("torch.", "") if p.dtype != __import__("torch").bfloat16 else None
    return None


def load_factory(spec: str, weights: str | None = None) -> ModelSource:
    import torch

    target, _, fn_name = spec.rpartition(":")
    mod = _import_target(target)
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        choices = [n for n in dir(mod) if callable(getattr(mod, n)) and not n.startswith("_")]
        raise ModelSourceError(f"{target} has no function {fn_name!r}; it has: {', '.join(choices[:10])}")
    try:
        result = fn()
    except Exception as e:
        _user_code_failed(f"{spec}()", e)
    if isinstance(result, tuple) and len(result) == 2:
        result = {"model": result[0], "example_inputs": result[1]}
    if not isinstance(result, dict) or "model" not in result or "example_inputs" not in result:
        raise ModelSourceError(f"{spec} must return (module, example_inputs) or a dict with 'model' and "
                               "'example_inputs'")
    module = result["model"]
    if not isinstance(module, torch.nn.Module):
        raise ModelSourceError(f"{spec} returned a {type(module).__name__}, not a torch.nn.Module")
    if isinstance(module, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
        # Every converter starts from torch.export, which cannot trace TorchScript: say so here,
        # not as torch.export's own error from deep inside the export.
        raise ModelSourceError(f"{spec} returned a TorchScript module ({type(module).__name__}); edgekit's converters "
                               "start from torch.export, which cannot take TorchScript",
                               hint="return the eager nn.Module (before torch.jit.script/trace), or export it to "
                                    "ONNX once and pass the .onnx file")
    if weights:
        from .safety import load_state_dict

        sd = load_state_dict(Path(weights))
        missing, unexpected = module.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ModelSourceError(f"--weights {weights} does not fit the module: missing {list(missing)[:5]}, "
                                   f"unexpected {list(unexpected)[:5]}")
    module.eval()
    fdt = _float_dtype(module)
    names = result.get("input_names")
    example = as_sample(result["example_inputs"], names, fdt)
    verify = [as_sample(s, list(example), fdt) for s in result.get("verification_inputs", [])]
    verify_data = "factory" if verify else "random"
    if not verify:
        verify = random_like(example, VERIFY_RANDOM_SAMPLES, seed=20261127)
    calib = [as_sample(s, list(example), fdt) for s in result.get("calibration_inputs", [])]
    _check_like(verify, example, "verification_inputs")
    _check_like(calib, example, "calibration_inputs")
    labels = result.get("verification_labels")
    state = result.get("state")
    if state is not None:
        outs = result.get("output_names") or []
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in state.items()):
            raise ModelSourceError(f"{spec}: 'state' must map output names to input names, e.g. "
                                   "{'h_out': 'h', 'c_out': 'c'}")
        bad = [v for v in state.values() if v not in example] + [k for k in state if outs and k not in outs]
        if bad:
            raise ModelSourceError(f"{spec}: 'state' names {bad}, which are not the model's inputs {list(example)} "
                                   f"or outputs {outs}", hint="give 'output_names' and name the state tensors in both")
    dynamic = []
    if result.get("dynamic_shapes") is not None:
        from .dynamic import from_factory

        dynamic = from_factory(result["dynamic_shapes"], example, spec)
    specs = result.get("input_specs")
    if specs is not None and (not isinstance(specs, (list, tuple)) or not all(isinstance(x, str) for x in specs)):
        raise ModelSourceError(f"{spec}: 'input_specs' must be a list of --input strings, e.g. "
                               "['input_ids:1x[1..128]:int64', 'sr=16000']")
    src = ModelSource(
        state=state, dynamic=dynamic,
        name=Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1],
        spec=spec, kind="torch", sha256=module_sha256(module), example=example, module=module,
        output_names=result.get("output_names"), task=result.get("task", "generic"),
        labels=result.get("labels"), preprocessing=dict(result.get("preprocessing", {})),
        verify_inputs=verify, verify_labels=None if labels is None else np.asarray(labels),
        verify_data=verify_data,
        calib_inputs=calib,
    )
    if specs:  # as if given on the command line (command-line --input is applied after, and wins)
        from .input_spec import apply_to_torch_source

        apply_to_torch_source(src, list(specs))
    return src
