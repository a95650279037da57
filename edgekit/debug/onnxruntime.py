"""An ONNX Runtime artifact's intermediate values: every node output the source model also has (by
name: the dynamo exporter names values after the export's graph nodes, and ONNX Runtime's quantizer
and onnxscript's fusions keep the names they do not replace) becomes an extra graph output.

What cannot be seen: values a fusion replaced (a fused attention's internals), and, with values
exposed, ORT cannot fuse across them (a QDQ pair into QLinearConv), so an INT8 layer's value is the
float one between its Q/DQ nodes, the same numbers the fused kernel rounds to."""
from __future__ import annotations

NAMES = "onnx"  # values are named after the ONNX export's (decomposed) graph (edgekit.debug.source)
PRECISIONS = ("fp32", "fp16", "int8")  # the artifacts whose layers it reads


def read_layers(path, sample: dict, wanted: list[str], *, layout: dict | None, io: tuple, src=None,
                precision: str = "fp32", room_bytes: int = 0):
    from .source import run_exposed, typed_model

    model = typed_model(path)
    produced = {o for node in model.graph.node for o in node.output}
    names = [n for n in wanted if n in produced]
    arrays = run_exposed(model, names, sample, optimize=True)  # as the artifact runs
    missing = len(names) - len(arrays)
    notes = [f"{len(arrays)} of {len(wanted)} source layers are values of the ONNX graph (by name)"]
    if missing:
        notes.append(f"{missing} matched value(s) had no type for an output; not read")
    return arrays, notes, {}
