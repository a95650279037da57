"""The source model's layers on one input: every intermediate tensor, in graph order, with what made it.

Names must be the ones the artifact's toolchain kept, so each reader says which graph it names
layers after (its NAMES):
- "fx": the source's torch.export graph, run node by node (torch.fx.Interpreter); each call_function
  node with a floating-point tensor output is a layer, named by its node name (what litert-torch's
  tensor names and ExecuTorch's debug handles point back to), with the nn.Module path and the
  user's source line from the node's stack trace.
- "onnx": the source's ONNX export (the one compile makes: torch.onnx dynamo), run on ONNX Runtime
  with optimizations off and every value exposed; values are named after the *decomposed* graph's
  nodes, whose numbering differs from torch.export's (view_5 there is another tensor than view_5
  here), so ONNX Runtime artifacts are matched against this graph, never the FX one. Module paths
  and source lines come from the exporter's node metadata. An ONNX source is its own export.
"""
from __future__ import annotations

import numpy as np


def source_layers(src, sample: dict, names: str = "fx") -> tuple[list[dict], dict[str, np.ndarray]]:
    """([{name, op, module, source}], {name: array}) in graph order, named as `names` says."""
    if src.kind != "torch":
        return _onnx_layers(src.onnx_path, sample)
    if names == "fx":
        return _torch_layers(src, sample)
    import tempfile
    from pathlib import Path

    from ..converters.onnx_export import export_onnx

    with tempfile.TemporaryDirectory(prefix="edgekit-debug-onnx-") as tmp:
        path = Path(tmp) / "source.onnx"
        export_onnx(src.module, sample, src.output_names, path, src.dynamic)
        return _onnx_layers(path, sample)


def _torch_layers(src, sample: dict):
    import torch

    from ..converters import torch_args
    from ..converters.fx_visit import visit_nodes
    from ..graphops import op_name, user_frame

    from ..converters import torch_dynamic_shapes

    with torch.no_grad():  # with the dims the converters kept dynamic: symbolic nodes take names too
        gm = torch.export.export(src.module, torch_args(sample),
                                 dynamic_shapes=torch_dynamic_shapes(sample, src.dynamic)).module()
    nodes = [n for n in gm.graph.nodes if n.op == "call_function"]
    arrays, layers = {}, []

    def keep(node, _env, out):
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            arrays[node.name] = out.detach().float().numpy().copy()

    visit_nodes(gm, [torch_args(sample)], {n.name for n in nodes}, keep)
    for n in nodes:
        if n.name in arrays:
            layers.append({"name": n.name, "op": op_name(n.target), "module": _module(n),
                           "users": [u.name for u in n.users],
                           "source": user_frame(n.meta.get("stack_trace"))})
    return layers, arrays


def _module(node) -> str:
    """'features.3 (Conv2d)': the innermost nn.Module that made the node, as the model names it."""
    scope = list((node.meta.get("nn_module_stack") or {}).values())
    if not scope:
        return ""
    path, kind = scope[-1]
    kind = getattr(kind, "__name__", str(kind)).rsplit(".", 1)[-1]
    return f"{path} ({kind})" if path else kind


def _onnx_layers(onnx_path, sample: dict):
    from ..graphops import user_frame

    model = typed_model(onnx_path)
    typed = {v.name for v in [*model.graph.value_info, *model.graph.output]}
    users: dict[str, list[str]] = {}  # value -> the values its consumers make (their first output)
    for node in model.graph.node:
        for i in node.input:
            users.setdefault(i, []).extend(node.output[:1])
    layers, names = [], []
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        for out in node.output:
            if out in typed and out not in names:
                names.append(out)
                layers.append({"name": out, "op": _onnx_op(meta, node), "module": _onnx_module(meta),
                               "users": users.get(out, []),
                               "source": user_frame(meta.get("pkg.torch.onnx.stack_trace"))})
    arrays = {n: a.astype(np.float32) for n, a in run_exposed(model, names, sample, optimize=False).items()}
    return [lay for lay in layers if lay["name"] in arrays], arrays


def typed_model(path):
    """An ONNX model with its values' types inferred (what exposing them as outputs needs)."""
    import onnx

    model = onnx.load(str(path))
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - contrib ops (com.microsoft) onnx does not know: the rest keep their types
        return model


def run_exposed(model, names: list[str], sample: dict, optimize: bool) -> dict[str, np.ndarray]:
    """Run an onnx ModelProto on ONNX Runtime with these values exposed; their floating-point values.
    optimize: as an artifact runs (ORT_ENABLE_ALL), else the graph as given."""
    import onnxruntime as ort

    expose(model, names)
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {i.name: sample[i.name] for i in sess.get_inputs()}
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    return {n: np.asarray(got[n]) for n in names if n in got and np.asarray(got[n]).dtype.kind == "f"}


def _onnx_module(meta: dict) -> str:
    """'stem (Conv2d)' from the exporter's namespace (': m.Net/stem: torch.nn.modules.conv.Conv2d/conv2d: aten...')."""
    parts = [p.split(": ", 1) for p in meta.get("namespace", "").split("/") if ": " in p]
    mods = [(path.strip(), kind.rsplit(".", 1)[-1]) for path, kind in parts if not kind.startswith(("aten.", "prims."))]
    if not mods:
        return ""
    path, kind = mods[-1]
    return f"{path} ({kind})" if path else kind


def _onnx_op(meta: dict, node) -> str:
    last = meta.get("namespace", "").rsplit(": ", 1)
    return last[1] if len(last) == 2 and last[1].startswith(("aten.", "prims.")) else node.op_type


def expose(model, names: list[str]) -> None:
    """Make these values of an onnx ModelProto graph outputs too (their types from shape inference)."""
    info = {v.name: v for v in [*model.graph.value_info, *model.graph.input]}
    have = {o.name for o in model.graph.output}
    for n in names:
        if n not in have and n in info:
            model.graph.output.append(info[n])
            have.add(n)
