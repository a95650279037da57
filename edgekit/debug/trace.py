"""One artifact of a bundle against its source model, layer by layer (runs in a child process: the
source model, the artifact's runtime and every intermediate tensor live and die here; only the
numbers go back)."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np


def trace(bundle_dir: str, artifact_id: str, input_path: str | None = None) -> dict:
    from ..bundle import open_bundle
    from ..errors import UsageError
    from . import READERS

    bundle = Path(bundle_dir)
    manifest = open_bundle(bundle)
    art = next(a for a in manifest.artifacts if a.id == artifact_id)
    if art.runtime not in READERS:
        raise UsageError(f"debug reads layers on {', '.join(READERS)}; {art.id} runs on {art.runtime}")
    if art.model:
        raise UsageError(f"{art.id} is the fallback model's ({art.model.get('source')}), not this bundle's model: "
                         "debug traces the bundle's own model only")
    src, notes = _source(bundle, manifest)
    sample, what = _input(bundle, manifest, art, src, input_path)
    return trace_loaded(src, sample, art.runtime, bundle / art.path, art.precision, art.input_layout,
                        (art.inputs, art.outputs), {"artifact": art.id, "input": what, "notes": notes})


def trace_loaded(src, sample: dict, runtime: str, path: Path, precision: str, layout: dict | None, io: tuple,
                 record: dict | None = None) -> dict:
    """The comparison itself, for a source already loaded (compile calls this on a failed artifact).
    io: the artifact's (input, output) TensorSpecs, which name tensors the file may not."""
    from ..reference import run_source
    from ..runtimes import open_runner
    from ..runtimes.buckets import is_bucketed
    from . import READERS
    from .compare import aligned, compare, first_divergence_line, metrics
    from .source import source_layers

    record = dict(record or {})
    notes = list(record.pop("notes", []))
    if is_bucketed(path):  # one static artifact per shape: the source is exported static too, as its converter did
        path = _bucket_file(path, sample)
        src.dynamic = []
    reader = importlib.import_module(READERS[runtime])
    layers, ref = source_layers(src, sample, reader.NAMES)
    got, read_notes, fused = reader.read_layers(path, sample, [lay["name"] for lay in layers], layout=layout,
                                                io=io, src=src, precision=precision,
                                                room_bytes=sum(a.nbytes for a in ref.values()))
    by_name = {lay["name"]: lay for lay in layers}
    _folded_batch_norms(layers, by_name, got, fused)
    for lay in layers:  # a tensor of fused ops stands for its last one; the others are named with it
        if fused.get(lay["name"]):
            lay["fused"] = [{k: by_name[f].get(k) for k in ("name", "module", "source")} for f in fused[lay["name"]]]
    rows, first = compare(layers, ref, got, precision)
    want = run_source(src, [sample])[0]
    with open_runner(runtime, path, 1, *io, layout) as runner:
        out = runner.run(sample)
    outputs = {n: metrics(want[n], a) for n in want if n in out
               and (a := aligned(np.asarray(want[n]), np.asarray(out[n]))) is not None}
    return {**record, "runtime": runtime, "precision": precision, "source_layers": len(layers),
            "matched": sum("rel_err" in r for r in rows), "rows": rows, "first": first,
            "line": first_divergence_line(first, rows, precision), "outputs": outputs, "notes": notes + read_notes}


# A layer trace after a failed verification runs in a process of its own, and gets this long: it
# explains a failure and must never turn one into a hang (native runtimes loaded twice in one
# process, a huge model's debug twin).
FAILURE_TRACE_TIMEOUT_S = 300.0


def on_failed_verification(work, runtime: str, path: Path, precision: str, layout: dict | None,
                           samples: list[dict], refs: list[dict], got: list[dict], output: str) -> str | None:
    """compile's verification failed: trace its worst held-out sample through the source model and
    the artifact (in a child process), and return the `first divergence: ...` line when one layer
    jumps; None where the runtime has no reader or the trace fails (it explains a failure, it never
    adds one)."""
    import sys

    from ..errors import EdgekitError
    from ..isolate import run_step
    from ..samples import save_samples
    from . import READERS

    if runtime not in READERS or not samples \
            or precision not in importlib.import_module(READERS[runtime]).PRECISIONS:
        return None
    from .compare import metrics

    cos = [min(metrics(r[k], g[k])["cosine"] for k in r if k in g) for r, g in zip(refs, got)]  # worst output of each
    sample_path = work.dir / f"debug-{Path(path).stem}.npz"
    save_samples(sample_path, [samples[int(np.argmin(cos))]])
    try:
        found = run_step(f"layers-{Path(path).stem}", "edgekit.debug.trace:trace_work",
                         {"workdir": str(work.dir), "point": work.point, "runtime": runtime, "path": str(path),
                          "precision": precision, "layout": layout, "sample_path": str(sample_path)},
                         work.dir / "debug-logs", timeout=FAILURE_TRACE_TIMEOUT_S)
    except EdgekitError as e:
        print(f"edgekit: the layer trace of {Path(path).name} did not finish: {e.message}", file=sys.stderr)
        return None
    return found["line"] if found["first"] else None


def trace_work(workdir: str, point: dict | None, runtime: str, path: str, precision: str, layout: dict | None,
               sample_path: str) -> dict:
    """The child side of on_failed_verification: the compile's source, loaded from its work folder."""
    from ..manifest import TensorSpec
    from ..samples import load_samples
    from ..work import Work

    work = Work(Path(workdir), point=point)
    if work.info.get("kind") == "onnx":
        from ..sources import load_model

        src = load_model(work.info["source"], work.info.get("weights"), [_input_text(t) for t in work.info["inputs"]])
    else:
        from ..converters import torch_source

        src = torch_source(work, "debug")
    io = tuple([TensorSpec.from_dict(t) for t in work.info[k]] for k in ("inputs", "outputs"))
    found = trace_loaded(src, load_samples(Path(sample_path))[0][0], runtime, Path(path), precision, layout, io)
    return {"line": found["line"], "first": found["first"] is not None}


def _source(bundle: Path, manifest) -> tuple:
    """The compile's source model, loaded again here as the compile loaded it (its weights, its --input
    specs and dynamic dims); refused when it is not the model that was compiled."""
    from ..errors import ModelSourceError
    from ..sources import load_model
    from ..sources.dynamic import DynamicDim

    m = manifest.model
    inputs = m.get("input_specs") or ([_input_text(t) for t in m["inputs"]] if m.get("kind") == "onnx" else None)
    weights = str(bundle / "distill" / "student.pt") if m.get("distillation") else m.get("weights")
    try:
        src = load_model(m["source"], weights, inputs)
    except ModelSourceError as e:
        raise ModelSourceError(f"debug runs the model this bundle was compiled from, {m['source']}"
                               + (f" with {weights}" if weights else "") + f", and cannot load it here: {e.message}",
                               hint="run debug where that model is (a model compiled from memory with "
                                    "edgekit.compile was a temporary .pt2: compile from a file to debug later)") from e
    if src.sha256 != m.get("sha256"):
        raise ModelSourceError(f"{m['source']} is not the model this bundle was compiled from (sha256 "
                               f"{src.sha256[:12]}, compiled {str(m.get('sha256'))[:12]}): layers compared with "
                               "another model name nothing", hint="debug with the source as it was compiled")
    if src.kind == "torch" and m.get("dynamic") and not inputs:
        src.dynamic = [DynamicDim.from_dict(d) for d in m["dynamic"]]
    return src, []


def _folded_batch_norms(layers: list[dict], by_name: dict, got: dict, fused: dict) -> None:
    """A layer whose only user is a batch norm the artifact has no tensor for: the norm was folded into
    it (PT2E, ORT and TFLite all fold them), so its tensor holds the norm's output: it stands for that."""
    for lay in layers:
        users = lay.get("users") or []
        if lay["name"] not in got or len(users) != 1 or users[0] in got or users[0] not in by_name:
            continue
        norm = by_name[users[0]]
        if "batch_norm" in norm["op"].lower() or norm["op"] == "BatchNormalization":
            got[norm["name"]] = got.pop(lay["name"])
            fused[norm["name"]] = [*fused.pop(lay["name"], []), lay["name"]]


def _input_text(t: dict) -> str:
    """A recorded input as the `--input` text that gave it (ranges for its dynamic dims)."""
    dims = [str(d) for d in t["shape"]]
    for axis, _name, lo, hi in t.get("dynamic") or []:
        dims[axis] = f"[{lo}..{hi}]"
    return f"{t['name']}:{'x'.join(dims)}:{t['dtype']}"


def _input(bundle: Path, manifest, art, src, input_path: str | None) -> tuple[dict, str]:
    if input_path:
        from ..calibration import read_calibration

        samples = read_calibration(input_path, src.example, src.preprocessing, limit=1)
        return samples[0], f"first sample of {input_path}"
    from ..selftest import selftest_feeds

    inputs, _ = selftest_feeds(bundle, manifest, art)
    if not inputs:
        return src.example, "the model's example input"
    return inputs[0], "the bundle's first self-test vector (held-out data)"


def _bucket_file(folder: Path, sample: dict) -> Path:
    """The shape bucket of a bucketed artifact that takes this sample's shapes as they are (buckets.json
    read and checked as BucketRunner reads it; debug does not pad)."""
    from ..errors import InputError
    from ..runtimes.buckets import BucketRunner

    buckets = BucketRunner(folder, None).buckets
    shapes = {k: tuple(np.shape(v)) for k, v in sample.items()}
    for b in buckets:
        if all(b["shapes"].get(k) == s for k, s in shapes.items()):
            return folder / b["file"]
    raise InputError(f"{folder.name} is one static artifact per shape bucket and none takes {shapes}; "
                     f"give --input at one of: {[b['label'] for b in buckets]}")
