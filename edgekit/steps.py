"""The compile steps that run in child processes (see edgekit.isolate): prepare, build a candidate.

prepare: load the model, compute reference outputs on the held-out inputs, export ONNX once.
build_candidate: run one converter, then load the fresh artifact on its real runtime and verify it
against the reference. Both write only inside the work folder / the given artifact path.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ModelSourceError, root_cause  # noqa: F401 - root_cause: its old home, still imported from here
from .manifest import TensorSpec
from .work import Work  # noqa: F401 - the steps take it; converters and tests import it from here
from .reference import run_source
from .offhost import not_run_here, runs_here
from .samples import load_samples, save_samples  # noqa: F401 - pipeline and tests import them from here
from .shapes import build_buckets, shape_points, verify_shapes


def _check_tensor_names(spec: str, inputs: dict, outputs: dict) -> None:
    """Input and output names go into the manifest, which refuses any name outside its pattern when
    read: refuse such a model here, before building a bundle nothing could open."""
    from .manifest import tensor_name_ok

    bad = [n for n in [*inputs, *outputs] if not tensor_name_ok(n)]
    if bad:
        raise ModelSourceError(f"{spec}: tensor name(s) {[b[:60] for b in bad][:4]} are not 1-256 printable ASCII "
                               "characters without spaces, quotes, backslashes or `..` segments, which bundle manifests require",
                               hint="rename the model's inputs/outputs (e.g. onnx.compose / torch.export input names)")


SEQUENCE_STEPS = 50  # calls a stateful model is streamed over, in verification


def _sequence_reference(src) -> tuple[list, list]:
    """SEQUENCE_STEPS calls of the reference with its state carried from each call's outputs to the
    next call's inputs, starting from zeros; call t's other inputs are verification sample t (cycled)."""
    from .feeds import Stream

    fed = set(src.state.values())
    steps_in = [{k: v for k, v in src.verify_inputs[t % len(src.verify_inputs)].items() if k not in fed}
                for t in range(SEQUENCE_STEPS)]
    s = Stream(lambda feeds: run_source(src, [feeds])[0],
               [TensorSpec.of(k, v) for k, v in src.example.items()], src.state)
    return steps_in, [s.step(x) for x in steps_in]


def prepare(spec: str, weights: str | None, workdir: str, need_onnx: bool, calibration: str | None = None,
            converters: list[str] | None = None, inputs: list[str] | None = None,
            verify_data: str | None = None, example: str | None = None, shapes: bool = True) -> dict:
    """converters: run each one's pre-flight op check (edgekit.opcheck) on the one export.
    example: compile --example, one real input that replaces the source's own example.
    shapes: the reference at a dynamic model's extra verification shapes (`check` needs none)."""
    from .sources import load_model
    from .verify import accuracy

    work = Work(Path(workdir))
    work.dir.mkdir(parents=True, exist_ok=True)
    from .calibration import check_disjoint, dataset_hash, read_calibration

    src = load_model(spec, weights, inputs)
    if example:  # a real input to build at (same shape); made-up verification data copies its ranges
        src.example = read_calibration(example, src.example, src.preprocessing)[0]
        if src.verify_data == "random":
            from .sources.model import random_like

            src.verify_inputs = random_like(src.example, len(src.verify_inputs), seed=20261127)
    if verify_data:  # the user's own held-out inputs replace whatever the source had (or made up)
        src.verify_inputs = read_calibration(verify_data, src.example, src.preprocessing)
        src.verify_labels = None
        src.verify_data = f"--verify-data {verify_data} ({len(src.verify_inputs)} samples)"
    calib_source = "the model's own calibration set" if src.calib_inputs else None
    if calibration:
        src.calib_inputs = read_calibration(calibration, src.example, src.preprocessing)
        calib_source = f"--calibration {calibration}"
    if inputs:  # NAME=VALUE specs: that input holds the value in every sample, whatever the data said
        from .sources.input_spec import apply_values, parse_inputs

        specs = parse_inputs(inputs)
        src.example = apply_values([src.example], specs)[0]
        src.verify_inputs, src.calib_inputs = apply_values(src.verify_inputs, specs), apply_values(src.calib_inputs, specs)
    check_disjoint(src.calib_inputs, src.verify_inputs)  # held-out means held out, for every source
    from .reference import degenerate, reference_outputs

    refs = reference_outputs(src, src.verify_inputs, run_source)  # ReferenceFailed: its own exit code
    reference_check = degenerate(refs)
    if src.state:  # a recurrent model: the reference over a sequence of calls, carrying its state
        save_samples(work.dir / "sequence.npz", *_sequence_reference(src))
    save_samples(work.dir / "verify.npz", src.verify_inputs, refs, src.verify_labels)
    save_samples(work.dir / "example.npz", [src.example])  # what converters build at (--example, NAME=VALUE applied)
    verify_shapes = shape_points(src, work) if src.dynamic and shapes else []
    if src.calib_inputs:
        save_samples(work.dir / "calib.npz", src.calib_inputs)
    export = {}
    if need_onnx:
        if src.kind == "torch":
            from .converters.onnx_export import export_onnx

            try:
                export = export_onnx(src.module, src.example, src.output_names, work.onnx_path, src.dynamic)
            except Exception as e:  # only the ONNX-based candidates fail; the others go on
                import traceback

                from .graphops import export_error

                traceback.print_exc()
                found = export_error(e)
                export = {"error": found["error"], "source": found["source"]}
        else:
            import onnx_ir as ir

            model = ir.load(str(src.onnx_path))
            # External data (checked: inside the model's folder) is read in, so the working copy
            # and every artifact made from it is one self-contained file.
            ir.external_data.load_to_model(model)
            from .sources.dynamic import input_ranges

            ranges = input_ranges(src.dynamic)
            for v in model.graph.inputs:  # the resolved shapes (--input): static but for the ranges' symbols
                if v.name in src.example:
                    v.shape = ir.Shape([ranges[v.name][i][0] if i in ranges.get(v.name, {}) else n
                                        for i, n in enumerate(src.example[v.name].shape)])
            try:
                ir.save(model, str(work.onnx_path))
            except ValueError as e:  # protobuf's 2 GB limit for one file
                raise ModelSourceError(f"{src.onnx_path}: the model with its external data does not fit one "
                                       f"ONNX file ({str(e).splitlines()[0][:160]})",
                                       hint="edge artifacts are single files under 2 GB; shrink or quantize the "
                                            "model first") from None
            export = {"exporter": "given as ONNX"}
    _check_tensor_names(spec, src.example, refs[0])
    src_acc = None
    if src.verify_labels is not None and src.task == "classification":
        src_acc = accuracy(np.stack([r[src.output_names[0]] for r in refs]), src.verify_labels)
    from .sources.dynamic import input_ranges

    ranges = input_ranges(src.dynamic)
    info = {
        "name": src.name, "source": spec, "weights": weights, "kind": src.kind, "sha256": src.sha256, "task": src.task,
        "labels": src.labels, "preprocessing": src.preprocessing,
        "inputs": [TensorSpec.of(k, v, ranges.get(k)).to_dict() for k, v in src.example.items()],
        "outputs": [TensorSpec.of(k, v).to_dict() for k, v in refs[0].items()],
        "reference": "PyTorch eager (torch.no_grad)" if src.kind == "torch"
                     else "the given ONNX file on ONNX Runtime with graph optimizations off",
        "verify_data": src.verify_data, "verify_samples": len(src.verify_inputs),
        "calib_samples": len(src.calib_inputs), "input_specs": inputs or None, "source_accuracy": src_acc,
        "reference_check": reference_check, "state": src.state,
        "sequence_steps": SEQUENCE_STEPS if src.state else None,
        "dynamic": [d.to_dict() for d in src.dynamic], "verify_shapes": verify_shapes,
        "export": export,
        "calibration": {"source": calib_source, "samples": len(src.calib_inputs),
                        "sha256": dataset_hash(src.calib_inputs)} if src.calib_inputs else None,
    }
    if converters:
        info["preflight"], info["cost"] = _preflight(src, work, export, converters)
    (work.dir / "model.json").write_text(json.dumps(info, indent=2))
    return info


def _advisory(fn, fallback, notes: list, what: str):
    """Run a piece of the check that is advice only: its failure is a note, never a failed compile."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        notes.append(f"{what} not available: {root_cause(e)}")
        return fallback


def _preflight(src, work: Work, export: dict, converters: list[str]) -> tuple[dict, dict | None]:
    """(op census + each converter's verdict, the model's FLOPs/bytes); the full op list (with
    source lines) goes to ops.json so a failed conversion's message can name the op and the line."""
    from .graphops import summarize
    from .opcheck import OpContext, export_program, ops_of_onnx, run_checks

    onnx_ok = work.onnx_path.exists() and not export.get("error")
    ops, notes = [], []
    if src.kind == "torch":
        from .graphops import list_ops

        exported, err = export_program(src.module, src.example)
        if exported is not None:
            ops = _advisory(lambda: list_ops(exported.graph), [], notes, "op list")
    else:
        exported, err = None, None
        ops = _advisory(lambda: ops_of_onnx(src.onnx_path), [], notes, "op list")
    ctx = OpContext(exported=exported, ops=ops, export_error=err, is_torch=src.kind == "torch",
                    onnx_path=work.onnx_path if onnx_ok else None,
                    onnx_error={"op": "ONNX export", "error": export["error"], "source": export.get("source")}
                    if export.get("error") else None)
    (work.dir / "ops.json").write_text(json.dumps({"ops": ops, "export_error": err}, indent=1))
    from .graphops import cost

    model_cost = _advisory(lambda: cost(exported), None, notes, "FLOP count") if exported is not None else None
    return ({"notes": notes, "export": "torch.export" if src.kind == "torch" else "ONNX graph", "export_error": err,
             "op_counts": summarize(ops), "verdicts": run_checks(ctx, converters)}, model_cost)


@contextmanager
def _stage(stage: str, what: str, work: Work):
    """A toolchain's exception inside this stage becomes a ConversionError naming the stage, the
    toolchain, the operator and the user's source line (the traceback stays in the step's log)."""
    from .errors import ConversionError, EdgekitError

    try:
        yield
    except EdgekitError:
        raise
    except Exception as e:
        import traceback

        from .graphops import explain_failure

        traceback.print_exc()
        msg, hint = explain_failure(stage, what, e, work.dir / "ops.json")
        raise ConversionError(msg, hint=hint) from e


def build_candidate(candidate: dict, workdir: str, out_path: str, tolerance: dict,
                    min_delegated_flops_share: float | None = None, calibration_method: dict | None = None,
                    qat_steps: int | None = None, qat_when_missed: bool = False) -> dict:
    from . import converters
    from .profiles import Candidate, Tolerance
    from .manifest import TensorSpec as _TS
    from .runtimes import open_runner, toolchain_of
    from .verify import accuracy, judge, per_output

    work = Work(Path(workdir), tolerance=tolerance, calibration_method=calibration_method, qat_steps=qat_steps,
                qat_when_missed=qat_when_missed)
    cand = Candidate(**candidate)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = work.info
    converter = converters.get(cand.converter)
    support = converter.shape_support if info.get("dynamic") else None
    with _stage("convert", f"{converter.toolchains[-1]} ({cand.converter})", work):
        conv, why_static = None, None
        if not info.get("dynamic") or support == "dynamic":
            conv = converter.convert(work, cand, out)
        elif support == "try":
            try:
                conv = converter.convert(work, cand, out)
            except Exception as e:  # noqa: BLE001 - the toolchain cannot keep these dims symbolic: buckets
                import traceback

                traceback.print_exc()
                why_static = f"{cand.converter} could not keep the dims dynamic: {root_cause(e)}"
                shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        if conv is None:
            out = out.with_suffix(".buckets")
            conv = build_buckets(work, cand, out)
            if why_static:
                conv.shape_support += f" ({why_static})"
        elif info.get("dynamic"):
            conv.shape_support = conv.shape_support or "dynamic: the model's dims keep their bounds (model.dynamic)"
    if conv.deferred or (conv.runs_on and not runs_here(conv.runs_on)):
        return not_run_here(cand, conv.to_dict(), info, tolerance)
    with _stage("load and run", f"{toolchain_of(cand.runtime)} ({cand.runtime})", work):
        runner = open_runner(cand.runtime, out, inputs=[_TS.from_dict(t) for t in info["inputs"]],
                             outputs=[_TS.from_dict(t) for t in info["outputs"]], layout=conv.input_layout)
        inputs, refs, labels = work.samples("verify")
        got = [runner.run(s) for s in inputs]
    ref_names = [o["name"] for o in info["outputs"]]
    missing = [n for n in ref_names if n not in got[0]]
    if missing:
        from .errors import ConversionError

        raise ConversionError(f"{cand.id}: artifact outputs {list(got[0])} lack {missing}")
    artifact_io = runner.artifact_io()
    if artifact_io:
        conv.artifact_io = artifact_io
    classifier = info["task"] == "classification"
    metrics = per_output(refs, got, ref_names, classifier)
    tol = Tolerance(**tolerance)
    failures = judge(metrics, tol)
    if failures:  # where the artifact leaves the source model, for the message (edgekit debug)
        from .debug.trace import on_failed_verification

        line = on_failed_verification(work, cand.runtime, out, cand.precision, conv.input_layout, inputs, refs, got,
                                      ref_names[0])
        failures += [line] if line else []
    shapes = verify_shapes(work, runner, ref_names, classifier, tol, failures) if info.get("verify_shapes") else None
    sequence = None
    if info.get("state"):  # a recurrent model: also streamed over the reference's sequence, its own state carried
        with _stage("stream", f"{toolchain_of(cand.runtime)} ({cand.runtime})", work):
            from .feeds import Stream

            seq_in, seq_ref, _ = load_samples(work.dir / "sequence.npz")
            s = Stream(runner.run, [_TS.from_dict(t) for t in info["inputs"]], info["state"])
            seq_got = [s.step(x) for x in seq_in]
        seq_metrics = per_output(seq_ref, seq_got, ref_names, classifier)
        sequence = {"steps": len(seq_in), "metrics": seq_metrics}
        failures += [f"streamed over {len(seq_in)} calls: {f}" for f in judge(seq_metrics, tol)]
    share = (conv.delegation or {}).get("flops_share")
    if min_delegated_flops_share is not None and share is not None and share < min_delegated_flops_share:
        left = ", ".join(f"{k} x{v}" for k, v in conv.delegation["not_delegated"].items())
        failures.append(f"only {100 * share:.0f}% of FLOPs run on {conv.delegation['backend']} "
                        f"(target needs >= {100 * min_delegated_flops_share:.0f}%); not delegated: {left}")
    acc = None
    if labels is not None and classifier:
        acc = accuracy(np.stack([g[ref_names[0]] for g in got]), labels)
    return {
        "converter": conv.to_dict(),
        "inputs": info["inputs"],
        "outputs": [TensorSpec.of(n, got[0][n]).to_dict() for n in ref_names],
        "verification": {
            "status": "failed" if failures else "passed", "where": "host-runtime",
            "reason": "; ".join(failures), "samples": len(inputs), "metrics": metrics,
            "tolerance": tol.to_dict(), "failures": failures, "accuracy": acc,
            **({"sequence": sequence} if sequence else {}), **({"shapes": shapes} if shapes else {}),
        },
    }


