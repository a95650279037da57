"""The source model's layers on one input: every intermediate tensor, in graph order, with what made it.

A PyTorch source: its torch.export graph run node by node (torch.fx.Interpreter); each call_function
node with a floating-point tensor output is a layer, named by its node name (the names torch.onnx's
dynamo exporter gives ONNX values, and ExecuTorch's debug handles point back to), with the nn.Module
path and the user's source line from the node's stack trace. An ONNX source: the model on ONNX Runtime
with graph optimizations off and every node output exposed.
"""
from __future__ import annotations

import numpy as np


def source_layers(src, sample: dict) -> tuple[list[dict], dict[str, np.ndarray]]:
    """([{name, op, module, source}], {name: array}) in graph order, plus the final outputs under
    their output names (layers of kind "output")."""
    return _torch_layers(src, sample) if src.kind == "torch" else _onnx_layers(src.onnx_path, sample)


def _torch_layers(src, sample: dict):
    import torch

    from ..converters import torch_args
    from ..converters.fx_visit import visit_nodes
    from ..graphops import op_name, user_frame

    with torch.no_grad():
        gm = torch.export.export(src.module, torch_args(sample)).module()
    nodes = [n for n in gm.graph.nodes if n.op == "call_function"]
    arrays, layers = {}, []

    def keep(node, _env, out):
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            arrays[node.name] = out.detach().float().numpy().copy()

    visit_nodes(gm, [torch_args(sample)], {n.name for n in nodes}, keep)
    for n in nodes:
        if n.name in arrays:
            layers.append({"name": n.name, "op": op_name(n.target), "module": _module(n),
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
    import onnx
    import onnxruntime as ort

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    typed = {v.name for v in [*model.graph.value_info, *model.graph.output]}
    layers, names = [], []
    for node in model.graph.node:
        for out in node.output:
            if out in typed and out not in names:
                names.append(out)
                layers.append({"name": out, "op": node.op_type, "module": node.name, "source": None})
    expose(model, names)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the model as given
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, sample)))
    arrays = {n: np.asarray(got[n], np.float32) for n in names
              if n in got and np.asarray(got[n]).dtype.kind == "f"}
    return [lay for lay in layers if lay["name"] in arrays], arrays


def expose(model, names: list[str]) -> None:
    """Make these values of an onnx ModelProto graph outputs too (their types from shape inference)."""
    info = {v.name: v for v in [*model.graph.value_info, *model.graph.input]}
    have = {o.name for o in model.graph.output}
    for n in names:
        if n not in have and n in info:
            model.graph.output.append(info[n])
            have.add(n)
