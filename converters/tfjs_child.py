"""ONNX -> TF SavedModel (onnx2tf) -> TF.js graph model (tensorflowjs). A standalone script.

It runs with the Python of .venv-tfjs (scripts/setup-env.sh web), never inside edgekit's own
environment: onnx2tf 1.29.24 (the last release for Python 3.11) and tensorflowjs 4.22 pin numpy
1.26 and TensorFlow 2.19, which fight the main environment's numpy 2 / torch / litert stack. So this
file imports nothing from edgekit. It prints one JSON line (RESULT_MARK) that converters/tfjs.py reads.

    python tfjs_child.py --onnx M.onnx --saved-model DIR --out OUT --quant none|float16|uint8 \
        [--keep-layout NAME ...]

The SavedModel is the slow half (onnx2tf checks every op against ONNX Runtime); it is written
once per compile into --saved-model and reused for each weight quantization.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

RESULT_MARK = "EDGEKIT-TFJS "
QUANT_MAPS = {"none": None, "float16": {"float16": "*"}, "uint8": {"uint8": "*"}}


def _no_downloads(workdir: Path) -> None:
    """onnx2tf fetches a sample image set from GitHub for models with 4-D 3-channel inputs unless
    the file already lies in the working directory; this machine (and CI) has no such access. It is
    only dummy data for onnx2tf's own op-by-op comparison, so seeded noise of that shape serves."""
    import numpy as np

    name = "calibration_image_sample_data_20x128x128x3_float32.npy"
    np.save(workdir / name, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))


def saved_model(onnx_path: str, out_dir: Path, keep_layout: list[str], shape_hints: list[str] | None = None) -> dict:
    """shape_hints: ["NAME:1,32", ...], the example's sizes of inputs with symbolic dims. onnx2tf then
    keeps those dims dynamic and still infers the graph's inner shapes right: without them it built
    a text model whose matmul failed at run time (measured: onnx2tf 1.29, a mean-pooled embedding)."""
    if (out_dir / "saved_model.pb").is_file():
        return {"saved_model": "reused"}
    import onnx2tf

    t = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="sm-", dir=out_dir.parent))
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        _no_downloads(tmp)
        onnx2tf.convert(input_onnx_file_path=onnx_path, output_folder_path=str(tmp / "sm"),
                        output_signaturedefs=True, not_use_onnxsim=True, non_verbose=True,
                        keep_ncw_or_nchw_or_ncdhw_input_names=keep_layout or None,
                        copy_onnx_input_output_names_to_tflite=True, shape_hints=shape_hints or None)
    finally:
        os.chdir(cwd)
    if not (tmp / "sm" / "saved_model.pb").is_file():
        raise RuntimeError("onnx2tf wrote no saved_model.pb (see its output above)")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (tmp / "sm").rename(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"saved_model": "converted", "onnx2tf_s": round(time.perf_counter() - t, 2)}


def _import_tfjs_converter():
    """tensorflowjs imports TF Decision Forests, TF Hub and JAX at import time even for SavedModel
    conversion; none of them is used on this path and each would pin yet another TF. Empty stand-ins
    let the module load (tf_keras first: it must not see the jax stand-in)."""
    import tf_keras  # noqa: F401

    for name in ("tensorflow_decision_forests", "tensorflow_hub", "jax", "jax.experimental",
                 "jax.experimental.jax2tf"):
        sys.modules.setdefault(name, types.ModuleType(name))
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    return tf_saved_model_conversion_v2


def signature(sm_dir: Path) -> dict:
    import tensorflow as tf

    sig = tf.saved_model.load(str(sm_dir)).signatures["serving_default"]
    ins = {k: {"shape": v.shape.as_list(), "dtype": v.dtype.name} for k, v in sig.structured_input_signature[1].items()}
    outs = {k: {"shape": v.shape.as_list(), "dtype": v.dtype.name} for k, v in sig.structured_outputs.items()}
    return {"inputs": ins, "outputs": outs}


def io_map(onnx_path: str, sig: dict) -> dict:
    """Signature names -> the model's own tensor names. onnx2tf keeps input names but calls outputs
    output_0, output_1, ... in graph order; shapes must agree (up to the NCHW->NHWC move of 4-D
    inputs) or the mapping is refused rather than guessed."""
    import onnx

    g = onnx.load(onnx_path, load_external_data=False).graph
    # a symbolic dim is None, as the SavedModel signature shows it
    dims = lambda v: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]  # noqa: E731
    outputs = {}
    for i, o in enumerate(g.output):
        key = f"output_{i}" if f"output_{i}" in sig["outputs"] else o.name
        if key not in sig["outputs"] or sig["outputs"][key]["shape"] != dims(o):
            raise RuntimeError(f"cannot match ONNX output {o.name} {dims(o)} to the SavedModel signature {sig['outputs']}")
        outputs[key] = o.name
    layout = {}
    for i in g.input:
        if i.name not in sig["inputs"]:
            raise RuntimeError(f"ONNX input {i.name} is not in the SavedModel signature {list(sig['inputs'])}")
        got, want = sig["inputs"][i.name]["shape"], dims(i)
        nhwc = [want[0], *want[2:], want[1]] if len(want) == 4 else None
        if got == want:
            layout[i.name] = "as the model"
        elif got == nhwc:
            layout[i.name] = "NHWC"
        else:
            raise RuntimeError(f"SavedModel input {i.name} has shape {got}; the model's is {want}")
    return {"outputs": outputs, "input_layout": layout}


# uint8 weights are per-tensor affine: one outlier stretches the step for the whole tensor. A
# tensor whose uint8 copy is off by more than this (relative L2 error) is stored float16 instead.
# Measured on MiniLM: all-uint8 gave worst-sentence cosine 0.980 (< 0.99); its embedding table
# (3.2 %) and FFN output projections (5-7 %) carry the error, the others stay under 2 %.
UINT8_MAX_REL_ERROR = 0.02


def read_weights(folder: Path) -> dict:
    """{name: float32 array} of a TF.js model folder's unquantized float32 weights."""
    import numpy as np

    manifest = json.loads((folder / "model.json").read_text())["weightsManifest"]
    data = b"".join((folder / p).read_bytes() for g in manifest for p in g["paths"])
    itemsize = {"float32": 4, "int32": 4, "bool": 1, "string": None}
    out, off = {}, 0
    for w in (w for g in manifest for w in g["weights"]):
        n = int(np.prod(w["shape"])) if w["shape"] else 1
        if itemsize.get(w["dtype"]) is None:
            raise RuntimeError(f"weight {w['name']} has dtype {w['dtype']}; cannot size it")
        if w["dtype"] == "float32":
            out[w["name"]] = np.frombuffer(data, np.float32, n, off).reshape(w["shape"])
        off += n * itemsize[w["dtype"]]
    return out


def uint8_plan(folder: Path) -> tuple[dict, dict]:
    """tensorflowjs quantization map: uint8 for tensors whose per-tensor uint8 error is small, float16
    for the rest (the fallthrough); and what was decided, for the manifest."""
    import numpy as np

    small, kept = [], []
    total = kept_params = 0
    for name, w in read_weights(folder).items():
        total += w.size
        lo, hi = float(w.min()), float(w.max())
        step = (hi - lo) / 255 or 1.0
        err = float(np.linalg.norm(np.round((w - lo) / step) * step + lo - w) / (np.linalg.norm(w) or 1.0))
        if err <= UINT8_MAX_REL_ERROR:
            small.append(name)
        else:
            kept.append((name, list(w.shape), round(err, 4)))
            kept_params += w.size
    kept.sort(key=lambda k: -k[2])
    return ({"uint8": small, "float16": True},
            {"uint8_max_rel_error": UINT8_MAX_REL_ERROR, "uint8_tensors": len(small), "float16_tensors": len(kept),
             "float16_share_of_params": round(kept_params / max(total, 1), 4),
             "float16_worst": [{"shape": s, "uint8_rel_error": e} for _, s, e in kept[:8]]})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--saved-model", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quant", choices=sorted(QUANT_MAPS), default="none")
    ap.add_argument("--keep-layout", nargs="*", default=[])
    ap.add_argument("--shape-hints", nargs="*", default=[])
    a = ap.parse_args()
    info = saved_model(a.onnx, a.saved_model, a.keep_layout, a.shape_hints)
    info["signature"] = signature(a.saved_model)
    info["io"] = io_map(a.onnx, info["signature"])
    t = time.perf_counter()
    conv = _import_tfjs_converter()
    tmp = a.out.with_name(a.out.name + ".tmp")
    qmap = QUANT_MAPS[a.quant]

    def write(folder: Path, quant_map) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        conv.convert_tf_saved_model(str(a.saved_model), str(folder), signature_def="serving_default",
                                    saved_model_tags="serve", quantization_dtype_map=quant_map,
                                    metadata={"edgekit": info["io"]})

    if a.quant == "uint8":  # first the plain weights, to measure each tensor's uint8 error
        plain = a.out.with_name(a.out.name + ".plain")
        write(plain, None)
        qmap, info["uint8_plan"] = uint8_plan(plain)
        shutil.rmtree(plain, ignore_errors=True)
    write(tmp, qmap)
    if not (tmp / "model.json").is_file():
        raise RuntimeError("tensorflowjs wrote no model.json")
    tmp.rename(a.out)
    import tensorflow as tf
    import tensorflowjs

    info.update({"tensorflowjs_s": round(time.perf_counter() - t, 2), "tensorflow": tf.__version__,
                 "tensorflowjs": tensorflowjs.__version__, "onnx2tf": _version("onnx2tf")})
    print(RESULT_MARK + json.dumps(info), flush=True)


def _version(dist: str) -> str | None:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
