"""PyTorch -> ONNX with `torch.onnx.export(..., dynamo=True)`, then name inputs/outputs safely.

Why rename afterwards instead of passing `output_names`: the dynamo exporter builds an invalid
graph ("Duplicate definition of name (embedding)") when a requested name collides with an
internal value's name, as it does on MiniLM. Here a colliding internal value is renamed first.
"""
from __future__ import annotations

from pathlib import Path


def _rename(graph, value, new: str) -> None:
    if value.name == new:
        return
    for v in _all_values(graph):
        if v is not value and v.name == new:
            v.name = f"{new}__internal"
    value.name = new


def _all_values(graph):
    yield from graph.inputs
    yield from graph.initializers.values()
    for node in graph:
        yield from (o for o in node.outputs)


def export_onnx(module, example: dict, output_names: list[str] | None, path: Path, dynamic=None) -> dict:
    """dynamic: the source's DynamicDims; those axes stay symbolic in the ONNX graph."""
    import onnx_ir as ir
    import torch

    from . import torch_args, torch_dynamic_shapes

    program = torch.onnx.export(module, torch_args(example), dynamo=True, external_data=False, optimize=True,
                                dynamic_shapes=torch_dynamic_shapes(example, dynamic))
    model = program.model
    g = model.graph
    for value, name in zip(g.inputs, example):
        _rename(g, value, name)
    names = output_names or (["output"] if len(g.outputs) == 1 else [f"output_{i}" for i in range(len(g.outputs))])
    if len(names) != len(g.outputs):
        names = [f"output_{i}" for i in range(len(g.outputs))]
    for value, name in zip(g.outputs, names):
        _rename(g, value, name)
    ir.save(model, str(path))
    return {"exporter": "torch.onnx.export(dynamo=True)", "opset": model.opset_imports.get("", None),
            "outputs": names}
