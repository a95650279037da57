"""FP16 for ONNX Runtime: float16 weights, and float16 arithmetic where this ONNX Runtime has the kernels.

ONNX Runtime's CPU kernels come per type, and its x86-64 build has float16 kernels for almost no
compute op (no Conv, MatMul or Gemm): a graph converted wholesale fails to load or drowns in casts
(EfficientNet-Lite0 with only its Clips in float16 ran 3.7x slower). So this ONNX Runtime's own
kernel registry decides: when it has float16 kernels for the model's matrix ops, ONNX Runtime's
float16 converter (onnxruntime.transformers.float16) converts every op that has one and leaves the
others float32 behind Cast nodes; when it lacks them, the arithmetic stays float32. Either way every
float32 weight left is stored as float16 followed by a Cast to float32, which ONNX Runtime's constant
folding turns back into a float32 weight when the session loads. The file is about half the size;
the arithmetic is what the converter info lists, so the speed is the FP32 graph's wherever the
kernels are missing (the benchmarks measure it, `--precision auto` decides on it). Inputs and
outputs stay float32.
"""
from __future__ import annotations

from pathlib import Path

# The ops that carry a model's arithmetic: without float16 kernels for them, nothing runs in float16.
MATRIX_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Attention", "MultiHeadAttention")
# Initializers below this many elements stay float32 (shapes, scalars, epsilons: no size to save).
MIN_ELEMENTS = 16


def _float16_ops(kernels: dict) -> set[tuple[str, str]]:
    """(domain, op) pairs with at least one float16 CPU kernel in this ONNX Runtime build."""
    return {key for key, rows in kernels.items()
            if any("tensor(float16)" in types for r in rows for types in r[2].values())}


def _store_weights_fp16(model) -> int:
    """Each float32 initializer (MIN_ELEMENTS or more) becomes a float16 initializer and a Cast back to
    float32 under the original name, so its readers are untouched. Returns how many were stored so."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph, kept, casts, count = model.graph, [], [], 0
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < MIN_ELEMENTS:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))
        count += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # the float16 converter may have typed these names float16 in value_info; they are float32 now
    cast = {c.output[0] for c in casts}
    infos = [v for v in graph.value_info if v.name not in cast]
    del graph.value_info[:]
    graph.value_info.extend(infos)
    nodes = casts + list(graph.node)  # the casts first keeps the node list topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def convert(src: Path, out_path: Path) -> dict:
    """src: the (fused) ONNX Runtime FP32 graph; writes the FP16 graph to out_path."""
    import collections

    import onnx

    from .ort_kernels import cpu_kernels, ort_version

    model = onnx.load(str(src))
    kernels, _ = cpu_kernels()
    have = _float16_ops(kernels)
    ops = collections.Counter((n.domain or "ai.onnx", n.op_type) for n in model.graph.node)
    missing = sorted({op for (domain, op) in ops if (domain, op) not in have and op != "Cast"})
    slow = sorted(set(missing) & set(MATRIX_OPS))
    if slow:  # float16 elementwise ops between float32 matrix products only add casts (measured: 3.7x slower)
        blocked, why = sorted({op for _, op in ops}), (
            f"onnxruntime {ort_version()} on this machine has no float16 CPU kernel for {', '.join(slow)}: "
            "float16 weights only, float32 arithmetic")
    else:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        blocked, why = missing, f"no float16 CPU kernel in onnxruntime {ort_version()} on this machine"
        model = convert_float_to_float16(model, keep_io_types=True, op_block_list=missing)
    stored = _store_weights_fp16(model)
    onnx.save(model, str(out_path))
    in_fp16 = sum(n for (_, op), n in ops.items() if op not in blocked and op != "Cast")
    return {"name": "onnxruntime float16 (onnxruntime.transformers.float16)",
            "weights": "float16, cast to float32 when the session loads where the kernel is float32",
            "weights_stored_fp16": stored,
            "arithmetic": "fp16" if in_fp16 and in_fp16 == sum(ops.values()) else "part fp16" if in_fp16 else "fp32",
            "compute": {"fp16_nodes": in_fp16, "fp32_nodes": sum(ops.values()) - in_fp16, "fp32_ops": blocked,
                        "why_fp32": why},
            "io": "float32"}
