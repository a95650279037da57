"""ONNX -> TF.js graph model (a folder: `model.json` + weight shards), FP32 or quantized weights.

The route is ONNX -> TF SavedModel (onnx2tf) -> TF.js (tensorflowjs). Both tools pin numpy 1.26
and TensorFlow 2.19 against the main environment's numpy 2, so they live in their own virtualenv
(.venv-tfjs, made by `scripts/setup-env.sh web`) and run there as a child process
(converters/tfjs_child.py); nothing here imports TensorFlow.

- Precision is the weights' storage: fp32; fp16 = float16 weights; int8 = uint8 affine weights
  (tensorflowjs's quantization: per tensor, dequantized to float32 when the model loads), except
  tensors whose uint8 copy errs by > 2 %, kept float16 (tfjs_child.uint8_plan). TF.js computes in
  float32 either way: these buy download size, not speed.
- Layout: onnx2tf turns 4-D inputs channel-last (NHWC), which is also what tf.browser.fromPixels
  gives; the artifact records it (`input_layout`) and runners transpose the model's NCHW arrays.
  Inputs of other ranks keep their layout (onnx2tf would otherwise move a 3-D [1,16,64] input).
- Before onnx2tf, two rewrites into ops both tools take (`prepare_onnx`):
  ReduceL2 (the L2-normalize sentence encoders end with) -> Sqrt(ReduceSum(x*x)): onnx2tf 1.29
  passes a numpy int64 axis to tf.norm and fails; exact Gelu (BERT's) -> 0.5*x*(1+Erf(x/sqrt 2)):
  onnx2tf lowers it through TF's Erfc, which TF.js has no kernel for.
- The SavedModel is converted once per compile (work folder) and reused for each precision.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from . import ConvertResult, Converter
from ..locate import tfjs_python  # noqa: F401 - deps finds the converter through it too

CHILD = Path(__file__).with_name("tfjs_child.py")
RESULT_MARK = "EDGEKIT-TFJS "
QUANT = {"fp32": "none", "fp16": "float16", "int8": "uint8"}
WEIGHTS = {"fp32": "float32", "fp16": "float16 (dequantized to float32 at load)",
           "int8": "uint8 affine per tensor where its error is <= 2 %, float16 for the rest (dequantized to float32 at load)"}
TIMEOUT_S = 1800


def prepare_onnx(src: Path, dst: Path) -> list[str]:
    """The ONNX handed to onnx2tf, with the rewrites above; returns what was rewritten."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    nodes, done = [], {"ReduceL2": 0, "Gelu": 0}
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        name, x, y = node.name or f"n{len(nodes)}", node.input[0] if node.input else "", list(node.output)
        if node.op_type == "ReduceL2":
            sq, summed, inputs = f"{name}_sq", f"{name}_sumsq", [f"{name}_sq"] + list(node.input[1:])
            if "axes" in attrs and opset >= 13:  # opset < 18 ReduceL2 keeps axes as an attribute; ReduceSum 13+ an input
                inputs = [sq, f"{name}_axes"]
                model.graph.initializer.append(helper.make_tensor(inputs[1], onnx.TensorProto.INT64,
                                                                  [len(attrs["axes"])], attrs["axes"]))
            kw = {k: v for k, v in attrs.items() if k != "axes"}
            nodes += [helper.make_node("Mul", [x, x], [sq], name=f"{name}_mul"),
                      helper.make_node("ReduceSum", inputs, [summed], name=f"{name}_sum", **kw),
                      helper.make_node("Sqrt", [summed], y, name=f"{name}_sqrt")]
        elif node.op_type == "Gelu" and attrs.get("approximate", b"none") in (b"none", "none"):
            c = {k: f"{name}_{k}" for k in ("rsqrt2", "one", "half")}
            for key, val in (("rsqrt2", 2 ** -0.5), ("one", 1.0), ("half", 0.5)):
                model.graph.initializer.append(helper.make_tensor(c[key], onnx.TensorProto.FLOAT, [], [val]))
            t = [f"{name}_t{i}" for i in range(4)]
            nodes += [helper.make_node("Mul", [x, c["rsqrt2"]], [t[0]]), helper.make_node("Erf", [t[0]], [t[1]]),
                      helper.make_node("Add", [t[1], c["one"]], [t[2]]), helper.make_node("Mul", [x, t[2]], [t[3]]),
                      helper.make_node("Mul", [t[3], c["half"]], y, name=f"{name}_gelu")]
        else:
            nodes.append(node)
            continue
        done[node.op_type] += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    why = {"ReduceL2": "Sqrt(ReduceSum(x*x)) (onnx2tf 1.29 fails on ReduceL2)",
           "Gelu": "0.5*x*(1+Erf(x/sqrt 2)) (onnx2tf's exact Gelu uses Erfc; TF.js has no Erfc kernel)"}
    return [f"{op} -> {why[op]} x{n}" for op, n in done.items() if n]


def convert(work, candidate, out_path: Path) -> ConvertResult:
    from edgekit import deps

    py = tfjs_python()
    if py is None:
        from edgekit.errors import ToolchainMissing

        raise ToolchainMissing("the TF.js converter (onnx2tf + tensorflowjs in .venv-tfjs) is not installed",
                               hint=deps.TOOLCHAINS["tfjs-converter"].install)
    # Once per compile (per shape bucket), like the SavedModel: every precision reuses them.
    stem = work.onnx_path.stem  # "source", or "source-H32-W32" for a shape bucket
    prepared, notes = work.dir / f"tfjs-{stem}.onnx", work.dir / f"tfjs-{stem}.json"
    if not prepared.exists():
        notes.write_text(json.dumps(prepare_onnx(work.onnx_path, prepared)))
    rewritten = json.loads(notes.read_text())
    keep = [t["name"] for t in work.info["inputs"] if len(t["shape"]) in (3, 5)]  # onnx2tf refuses others
    hints = [f"{t['name']}:{','.join(map(str, t['shape']))}" for t in work.info["inputs"] if t.get("dynamic")]
    cmd = [py, str(CHILD), "--onnx", str(prepared), "--saved-model", str(work.dir / f"tf-saved-model-{stem}"),
           "--out", str(out_path), "--quant", QUANT[candidate.precision]] + (["--keep-layout", *keep] if keep else []) \
        + (["--shape-hints", *hints] if hints else [])
    # TF_ENABLE_ONEDNN_OPTS=0: with oneDNN on, grappler fuses LayerNorm into _MklLayerNorm, which TF.js lacks
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONNOUSERSITE": "1",
           "TF_ENABLE_ONEDNN_OPTS": "0"}
    env.pop("PYTHONPATH", None)  # the main venv's packages must not leak into the converter's
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    sys.stderr.write(p.stderr[-20000:])  # the step's log keeps the tools' own output
    line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith(RESULT_MARK)), None)
    if "Unsupported Ops in the model" in p.stderr:  # tensorflowjs's own op check, ops one per line after it
        ops = p.stderr.split("Unsupported Ops in the model", 1)[1].splitlines()[1:]
        ops = [o.strip() for o in ops if o.strip() and " " not in o.strip()][:10]
        raise RuntimeError(f"TF.js has no kernel for these TensorFlow ops that onnx2tf produced: {', '.join(ops)}")
    if p.returncode != 0 or line is None:
        tail = [ln for ln in (p.stderr + p.stdout).strip().splitlines() if ln.strip()][-6:]
        raise RuntimeError(f"onnx2tf/tensorflowjs failed (exit {p.returncode}): " + " | ".join(tail)[-1500:])
    res = json.loads(line[len(RESULT_MARK):])
    layout = res["io"]["input_layout"]
    info = {
        "name": "onnx2tf+tensorflowjs", "route": "ONNX -> TF SavedModel (onnx2tf) -> TF.js graph model",
        "versions": {k: res.get(k) for k in ("onnx2tf", "tensorflow", "tensorflowjs")},
        "weights": WEIGHTS[candidate.precision], "compute": "float32",
        "saved_model": res["saved_model"], "onnx2tf_s": res.get("onnx2tf_s"), "tensorflowjs_s": res["tensorflowjs_s"],
        "signature": res["signature"], "uint8_plan": res.get("uint8_plan"), "output_names": res["io"]["outputs"],
        "layout": ", ".join(f"{k}: {v}" for k, v in layout.items()),
        "files": sorted(f.name for f in out_path.iterdir()),
    }
    if rewritten:
        info["rewrites"] = rewritten
    nhwc = {k: v for k, v in layout.items() if v == "NHWC"}
    return ConvertResult(info, input_layout=nhwc or None)


def preflight(ctx) -> dict:
    """Every node of the ONNX export against onnx2tf's converter table: one module per ONNX op in
    onnx2tf/ops of the converter venv. ReduceL2 counts as supported (rewritten before onnx2tf)."""
    if ctx.onnx_error:
        return ctx.failed_before("ONNX export (torch.onnx.export, dynamo)", ctx.onnx_error)
    py = tfjs_python()
    if py is None:
        return {"status": "unknown", "unsupported": [], "not_accelerated": [], "table": "onnx2tf/ops",
                "error": "the TF.js converter venv is not installed (scripts/setup-env.sh web)"}
    import onnx

    table = {p.stem for site in Path(py).parents[1].glob("lib/python3*/site-packages") for p in (site / "onnx2tf/ops").glob("*.py")}
    model = onnx.load(str(ctx.onnx_path), load_external_data=False)
    unsupported = [{"op": n.op_type, "node": n.name, "source": None,
                    "why": f"onnx2tf 1.29 has no converter for {n.domain + '.' if n.domain else ''}{n.op_type}"}
                   for n in model.graph.node
                   if n.op_type != "Constant" and (n.domain not in ("", "ai.onnx") or n.op_type not in table)]
    return ctx.verdict(unsupported, table=f"onnx2tf/ops ({len(table)} ONNX ops)")


# Folder artifact: a TF.js graph model (model.json + weight shards).
CONVERTER = Converter(name="tfjs", format="tfjs-graph-model", suffix=".tfjs", toolchains=("onnx", "tfjs-converter"),
                      convert=convert, preflight=preflight, needs_onnx=True, shape_support="try")
