"""A LiteRT artifact's intermediate tensors, read with the interpreter's preserve-all-tensors mode
(XNNPACK then runs op by op; outputs are bit-identical to a normal run).

Matching: edgekit's LiteRT converter writes each tensor's torch.export node name(s) into its name
(`fx:relu_1|<module path>;;fx:conv2d_1|...`, converters/litert.py); a tensor of fused ops carries
all of them and stands for the last one in graph order (conv + relu fused: the relu). Of several
tensors for one node, the last one written (the op's output after any layout transposes) is kept.
Artifacts built without those names match nothing here (said in the notes). Quantized tensors are
dequantized with their own scale and zero point. What cannot be seen: nodes fused away (a batch
norm folded into its convolution, a pad folded into a conv) have no tensor of their own."""
from __future__ import annotations

import numpy as np

NAMES = "fx"  # tensor names carry torch.export node names (edgekit.debug.source)
PRECISIONS = ("fp32", "fp16", "int8")  # the artifacts whose layers it reads


def read_layers(path, sample: dict, wanted: list[str], *, layout: dict | None, io: tuple, src=None,
                precision: str = "fp32", room_bytes: int = 0):
    """(arrays by source layer, notes, {layer: the layers fused into its tensor})."""
    from ai_edge_litert import schema_py_generated as schema

    from ..runtimes import ChannelLastInputs
    from ..runtimes.litert import LiteRTRunner

    runner = LiteRTRunner(path, 1, preserve_all_tensors=True).bind(*io)
    (ChannelLastInputs(runner, layout) if layout else runner).run(sample)
    it = runner.interpreter
    model = schema.Model.GetRootAs(runner.path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    produced = {}  # tensor index -> (the index of the op that writes it, its op name, its first input)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = ops.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "")
        for t in op.OutputsAsNumpy():
            produced[int(t)] = (i, kind, int(op.Inputs(0)) if op.InputsLength() else -1)
    details = it.get_tensor_details()
    names = {d["index"]: d["name"] for d in details}
    order = {n: k for k, n in enumerate(wanted)}
    best: dict[str, tuple[int, np.ndarray]] = {}
    together: dict[str, set] = {}  # node -> the other nodes named in its tensors
    named = 0
    for d in details:
        if d["index"] not in produced:
            continue
        nodes = _nodes(d["name"])
        named += bool(nodes)
        nodes = [n for n in nodes if n in order]
        if not nodes:
            continue
        node = max(nodes, key=order.get)
        op, kind, first_input = produced[d["index"]]
        if kind == "TRANSPOSE" and node not in _nodes(names.get(first_input, "")) \
                and not any(k in node for k in ("permute", "transpose")):
            continue  # the NCHW -> NHWC adapter litert-torch puts before a conv: that node's input, not its output
        together.setdefault(node, set()).update(set(nodes) - {node})
        if node not in best or op > best[node][0]:
            best[node] = (op, _real(it.get_tensor(d["index"]), d))
    notes = [f"{len(best)} of {len(wanted)} source layers have a tensor in the .tflite (by the torch.export node "
             "names in its tensor names; fused-away nodes have none)"]
    if not named:
        notes.append("this .tflite carries no torch.export node names in its tensor names (built before edgekit "
                     "wrote them): recompile it to debug layer by layer")
    # fused with: the other nodes of its tensors that have no tensor of their own
    fused = {n: sorted((f for f in together.get(n, ()) if f not in best), key=order.get) for n in best}
    return {n: v for n, (_, v) in best.items()}, notes, {n: f for n, f in fused.items() if f}


def _nodes(tensor_name: str) -> list[str]:
    """The torch.export node names in a tensor's name (`fx:NODE|<module path>` parts joined by ';')."""
    return [p[3:].split("|", 1)[0] for p in tensor_name.split(";") if p.startswith("fx:")]


def _real(v: np.ndarray, d: dict) -> np.ndarray:
    """A tensor's real values: an int8/uint8/int16 one dequantized with its per-tensor scale."""
    q = d.get("quantization_parameters") or {}
    scales, zeros = q.get("scales", []), q.get("zero_points", [])
    if v.dtype.kind in "iu" and len(scales) == 1:
        return (v.astype(np.float32) - zeros[0]) * scales[0]
    return v.astype(np.float32) if v.dtype.kind == "f" else v
