"""The Python API: what the CLI does, callable from a notebook or a script, never calling sys.exit.

    import edgekit
    bundle = edgekit.compile(model, example_inputs=(x,), target="android")   # an nn.Module
    bundle = edgekit.compile("builtin:digits", target="cpu", out="build/digits")
    bundle.primary, bundle.artifacts, bundle.manifest
    bundle.bench()            # [{artifact, latency_ms: {p50, ...}, env, ...}], measured here
    p = bundle.load(); p.predict({"image": x})
    bundle.explain()          # how each quantized artifact was made

Errors are edgekit.errors' classes (ModelSourceError, ToolchainMissing, VerificationFailed ...),
each with the exit code the CLI uses for it; `edgekit compile` is a thin layer over `compile` here.
"""
from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from .errors import UsageError


class Bundle:
    """A compiled bundle on disk: its manifest (every hash checked when opened) and what to do with it."""

    def __init__(self, path):
        from .bundle import open_bundle

        self.path = Path(path)
        self.manifest = open_bundle(self.path)

    @property
    def artifacts(self) -> list:
        return list(self.manifest.artifacts)

    @property
    def primary(self):
        """The artifact a predictor serves first (None when nothing was verified)."""
        usable = self.manifest.usable()
        return usable[0] if usable else None

    @property
    def degraded(self) -> bool:
        """The target's preferred artifact failed and a verified fallback is primary (CLI exit 12)."""
        return bool(self.manifest.target.get("primary_choice", {}).get("degraded"))

    def bench(self, artifact: str | None = None, all: bool = False, threads: int = 1, choose_primary: bool = False,
              **options) -> list[dict]:
        """Benchmark on this machine, each artifact in a child process (edgekit.bench.bench_all's
        options: shapes, warmup_s, min_runs, min_time_s, keep_samples, profile). choose_primary: time
        every usable artifact and make the fastest primary (`bench --all --choose-primary`; only where
        this machine is the target)."""
        from .bench import bench_all
        from .errors import did_you_mean

        usable = [a.id for a in self.manifest.usable()]
        if artifact is not None and artifact not in usable:
            raise UsageError(f"no usable artifact {artifact!r} in {self.path}{did_you_mean(artifact, usable)}")
        if choose_primary:
            from .primary import check_can_choose

            if artifact is not None:
                raise UsageError("choose_primary times every usable artifact: give it without artifact")
            check_can_choose(self.manifest, None)
        ids = [artifact] if artifact else usable if all or choose_primary else usable[:1]
        if not ids:
            raise UsageError(f"{self.path} has no verified artifact to benchmark")
        results = bench_all(self.path, ids, threads, **options)
        if choose_primary:
            from .bundle import open_bundle
            from .primary import choose_primary as choose

            choose(self.path, self.manifest, results)
            self.manifest = open_bundle(self.path)
        return results

    def load(self, artifact: str | None = None, **options):
        """A predictor (edgekit.load): the primary with its verified fallbacks, or exactly `artifact`."""
        from . import load

        return load(self.path, artifact=artifact, **options)

    def explain(self, artifact: str | None = None) -> dict[str, list[str]]:
        """artifact id -> the lines `edgekit explain` prints for it."""
        from .explain import explain_artifact

        return {a.id: explain_artifact(a) for a in self.artifacts if artifact in (None, a.id)}

    def summary(self) -> str:
        """The table `edgekit compile` prints."""
        from .commands.common import summary

        return summary(self.path, self.manifest, {})

    def __repr__(self) -> str:
        p = self.primary
        return (f"Bundle({str(self.path)!r}, target={self.manifest.target['name']!r}, "
                f"primary={p.id if p else None!r}, artifacts={[a.id for a in self.artifacts]})")


def compile(model=None, example_inputs=None, target: str = "cpu", precision: str | None = None,
            out=None, *, weights=None, inputs: list[str] | None = None, verify_data=None, example=None,
            calibration=None, fallback_model=None, layout: str | None = None,
            calibration_method: str | None = None, percentile: float | None = None, distill: dict | None = None,
            preflight: bool = True, selftest_samples: int | None = None, rank: bool = True,
            qat: int | None = None) -> Bundle:
    """Compile `model` for `target` into a verified bundle at `out` (default build/MODEL-TARGET).

    model: a spec as `--model` takes it (builtin:NAME, file.py:factory, pkg.module:factory, a .onnx
    or .pt2 path; None: the built-in default), or a torch.nn.Module with `example_inputs` (a tensor or
    a tuple of them in forward()'s order), exported here with torch.export at the example's shapes
    (for dynamic dims, give a factory file with `dynamic_shapes`). Such a bundle's source is a
    temporary file: `edgekit debug` needs a model compiled from a file.
    verify_data, calibration, example: a path in any `--calibration` form, or arrays: one ndarray
    for a one-input model, or a dict of arrays named like the inputs (one sample or a stack).
    rank: where this machine is the target (cpu) and a precision is named, time what was built and
    make the fastest verified artifact primary, as `edgekit compile` does (False: keep the
    preference order; the CLI ranks with its own bench options).
    qat: fine-tuning steps for the INT8 candidates whose converter can (compile --qat STEPS;
    converters.qat.STEPS is the CLI's default); without a precision it builds INT8. qat=0: never
    fine-tune, not even where precision="auto" would.
    The other options are `edgekit compile`'s, by the same names."""
    from .pipeline import compile_model

    if qat and precision is None:
        precision = "int8"
    with ExitStack() as stack:
        tmp = None

        def scratch() -> Path:  # removed when compile returns: sources and arrays handed over as files
            nonlocal tmp
            tmp = tmp or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgekit-api-")))
            return tmp

        spec = _module_to_pt2(model, example_inputs, scratch) if _is_torch_module(model) else model
        if example_inputs is not None and not _is_torch_module(model):
            if example is not None:
                raise UsageError("give example_inputs or example, not both")
            example = example_inputs
        if spec is not None and not isinstance(spec, (str, Path)):
            raise UsageError(f"model must be a spec string, a path or a torch.nn.Module, not {type(model).__name__}")
        bundle, _manifest = compile_model(
            str(spec) if spec is not None else None, target, str(out) if out is not None else None,
            str(weights) if weights else None, fallback_model, calibration=_as_file(calibration, "calibration", scratch),
            layout=layout, op_check=preflight, precision=precision, calibration_method=calibration_method,
            percentile=percentile, distill=distill, inputs=inputs,
            verify_data=_as_file(verify_data, "verify", scratch), example=_as_file(example, "example", scratch),
            selftest_samples=selftest_samples, qat=qat)
    compiled = Bundle(bundle)
    if rank and precision is not None and compiled.manifest.target.get("host_is_target") and compiled.primary:
        compiled.bench(choose_primary=True)
    return compiled


def _is_torch_module(model) -> bool:
    return type(model).__module__.split(".")[0] != "builtins" and hasattr(model, "state_dict") \
        and hasattr(model, "forward")


def _module_to_pt2(module, example_inputs, scratch) -> Path:
    """An in-memory module as a torch.export archive, the form edgekit's children load safely. The
    module is exported in eval mode and handed back in the mode it came in."""
    import torch

    if example_inputs is None:
        raise UsageError("a torch.nn.Module needs example_inputs (a tuple of tensors, as torch.export takes)")
    if isinstance(example_inputs, dict):
        raise UsageError("example_inputs for a torch.nn.Module: a tuple in forward()'s order (the names come "
                         "from forward's parameters)")
    args = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    floating = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    args = tuple(_tensor(a, floating) for a in args)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            exported = torch.export.export(module, args)
    except Exception as e:
        from .errors import ModelSourceError, root_cause

        raise ModelSourceError(f"torch.export could not export {type(module).__name__}: {root_cause(e)}",
                               hint="edgekit check --model FILE.py:factory names the line; or export it yourself "
                                    "and pass the .pt2") from e
    finally:
        module.train(was_training)
    path = scratch() / f"{type(module).__name__}.pt2"
    torch.export.save(exported, str(path))
    return path


def _tensor(a, floating):
    """One example input as a CPU tensor; floating-point data in the module's own float type (numpy
    hands over float64, the module's weights are usually float32)."""
    import numpy as np
    import torch

    t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        return t.to(floating) if t.is_floating_point() else t
    return t


def _as_file(data, name: str, scratch):
    """A path as given, or arrays saved where the pipeline's readers take them (.npy / .npz)."""
    if data is None or isinstance(data, (str, Path)):
        return str(data) if data is not None else None
    import numpy as np

    def array(x):
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)

    if isinstance(data, (tuple, list)) and len(data) == 1:  # (x,) as for torch.export: its one input
        data = data[0]
    if isinstance(data, dict):
        path = scratch() / f"{name}.npz"
        np.savez(path, **{k: array(v) for k, v in data.items()})
        return str(path)
    if isinstance(data, (tuple, list)):
        raise UsageError(f"{name}: several arrays: give a dict by input name (which array is which input?)")
    if isinstance(data, np.ndarray) or hasattr(data, "detach"):
        path = scratch() / f"{name}.npy"
        np.save(path, array(data))
        return str(path)
    raise UsageError(f"{name}: give a path, an array or a dict of arrays, not {type(data).__name__}")
