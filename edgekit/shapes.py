"""Dynamic dims at compile time: the extra shapes every artifact is verified at, and shape buckets
(one static artifact per shape) for converters that cannot keep a dim symbolic.
The dims themselves, their bounds and points are edgekit.sources.dynamic's."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import root_cause
from .samples import load_samples, save_samples


def slug(point: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in point.items()).replace("/", "_")


def point_shapes(info: dict, point: dict) -> dict[str, list[int]]:
    """{input: shape} of the model's inputs with each dynamic dim at the point's size."""
    shapes = {t["name"]: list(t["shape"]) for t in info["inputs"]}
    for d in info["dynamic"]:
        for n, axis in d["inputs"]:
            shapes[n][axis] = point[d["name"]]
    return shapes


def static_onnx(src: Path, dst: Path, shapes: dict) -> None:
    """A copy of the working ONNX with every input at a static shape (one bucket's), and the shape
    arithmetic that the symbolic dims needed (Shape -> Gather -> Concat -> Reshape) folded into
    constants: static-shape toolchains choke on it (onnx2tf failed on MiniLM's, measured)."""
    import onnx_ir as ir
    import onnxscript.optimizer

    model = ir.load(str(src))
    for v in model.graph.inputs:
        if v.name in shapes:
            v.shape = ir.Shape(shapes[v.name])
    onnxscript.optimizer.optimize(model)
    tmp = dst.with_name(dst.name + ".tmp")
    ir.save(model, str(tmp))
    tmp.replace(dst)


SHAPE_SAMPLES = 8  # held-out samples per extra verification shape (dynamic dims)


def shape_points(src, work) -> list[dict]:
    """For a model with dynamic dims: the reference at each extra verification shape, on the first
    SHAPE_SAMPLES held-out samples cropped or wrapped to it (edgekit.sources.dynamic.at_point); one
    file per shape, which build_candidate verifies every artifact on."""
    from .reference import reference_outputs, run_source
    from .sources.dynamic import at_point, label, points

    from .errors import ReferenceFailed

    out = []
    for i, p in enumerate(points(src.dynamic)):
        ins = [at_point(s, src.dynamic, p) for s in src.verify_inputs[:SHAPE_SAMPLES]]
        try:
            refs = reference_outputs(src, ins, run_source)
        except ReferenceFailed as e:  # the model itself does not take this size: the range is wider than the model
            raise ReferenceFailed(f"at {label(p)}, a size within the dynamic dims' bounds: {e.message}",
                                  hint="the model does not run at every size of the range: narrow it (--input "
                                       "NAME:...[MIN..MAX], a factory's dynamic_shapes) to sizes it takes, or "
                                       "keep that dim fixed") from None
        save_samples(work.dir / f"verify-shape{i}.npz", ins, refs)
        out.append({"point": p, "label": label(p), "file": f"verify-shape{i}.npz", "samples": len(ins),
                    "data": f"{src.verify_data}, cropped or wrapped to {label(p)}"})
    return out


def verify_shapes(work, runner, ref_names: list[str], classifier: bool, tol, failures: list) -> list[dict]:
    """The artifact at each extra verification shape of a dynamic model (prepare's verify-shape*.npz):
    one record per shape; a shape it cannot run, or runs out of tolerance, fails the artifact."""
    from .verify import judge, per_output

    out = []
    for sp in work.info["verify_shapes"]:
        ins, refs, _ = load_samples(work.dir / sp["file"])
        rec = {"point": sp["point"], "label": sp["label"], "samples": len(ins), "data": sp["data"]}
        try:
            if hasattr(runner, "bucket_for"):  # a bucketed artifact: which static artifact ran (padded up?)
                rec["bucket"] = runner.bucket_for(ins[0])["label"]
            got = [runner.run(x) for x in ins]
        except Exception as e:  # noqa: BLE001 - a static artifact, a runtime that cannot resize: this shape fails
            import traceback

            traceback.print_exc()
            why = f"at {sp['label']}: the artifact cannot run this shape: {root_cause(e)}"
            failures.append(why)
            out.append({**rec, "status": "failed", "reason": why, "metrics": {}})
            continue
        metrics = per_output(refs, got, ref_names, classifier)
        bad = judge(metrics, tol)
        failures += [f"at {sp['label']}: {f}" for f in bad]
        out.append({**rec, "status": "failed" if bad else "passed", "metrics": metrics})
    return out


def build_buckets(work, cand, out: Path):
    """A converter whose artifacts are static, for a model with dynamic dims: one artifact per
    bucket shape (edgekit.sources.dynamic.bucket_points: the opt shape first), in a folder with
    buckets.json. Its runner picks the bucket whose shapes equal the call's, or, for dims the model
    declares paddable, the smallest larger one with the input padded (edgekit.runtimes.buckets);
    padding would change most models' answers, so any other shape is refused."""
    from dataclasses import replace

    from . import converters
    from .runtimes.buckets import BUCKETS_FILE
    from .sources.dynamic import bucket_points, label

    info = work.info
    dims = work.dims
    points = bucket_points(dims)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    converter = converters.get(cand.converter)
    suffix, records, first = converter.suffix, [], None
    for p in points:
        bw = replace(work, point=p)
        name = f"{slug(p)}{suffix}"
        conv = converter.convert(bw, cand, tmp / name)
        first = first or conv
        records.append({"point": p, "label": label(p), "file": name, "shapes": point_shapes(work.info, p),
                        **({"artifact_checks": conv.artifact_checks} if conv.artifact_checks else {})})
    (tmp / BUCKETS_FILE).write_text(json.dumps({"runtime": cand.runtime, "converter": cand.converter,
                                                "dims": info["dynamic"], "buckets": records}, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    checks = [c for r in records for c in (r.get("artifact_checks") or {}).get("failures", [])]
    padded = [d.name for d in dims if d.paddable]
    first.buckets = [{k: r[k] for k in ("label", "file", "shapes")} for r in records]
    first.shape_support = (f"static: one artifact per shape bucket ({len(records)}); "
                           + (f"shorter {', '.join(padded)} padded up to the next bucket, " if padded else "")
                           + "other shapes are refused")
    if first.artifact_checks:
        first.artifact_checks = {**first.artifact_checks, "failures": checks}
    return first
