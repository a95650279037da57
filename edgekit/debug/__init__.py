"""`edgekit debug`: where an artifact leaves its source model, layer by layer, on the artifact's own runtime.

The source model runs with every layer's output captured (source.py: a PyTorch model's torch.export
graph node by node; an ONNX model on ONNX Runtime with its values exposed). The artifact runs on its
runtime with as many intermediate tensors exposed as that runtime allows (one reader module per
runtime, listed in READERS). Tensors are matched by the names the toolchains keep (compare.py), and
each matched layer gets cosine, SNR, max-abs and relative error, the growth of that error over the
layers before it, the user's source line, and the first layer whose error jumps beyond what the
artifact's precision explains.
"""
from __future__ import annotations

# runtime -> module with `read_layers(path, sample, wanted, *, layout, io, src, precision) ->
# (arrays by source layer name, notes, {layer: source layers fused into the same tensor})`:
# wanted: the source layers' names in graph order; io: the artifact's (inputs, outputs) TensorSpecs;
# src: the loaded source model (ExecuTorch's reader rebuilds a per-op debug twin from it). Each reader's
# NAMES says which source graph its tensors are named after (edgekit.debug.source).
READERS = {"onnxruntime": "edgekit.debug.onnxruntime", "litert": "edgekit.debug.litert",
           "executorch": "edgekit.debug.executorch"}
