"""An ExecuTorch artifact's layers. The shipped .pte hands the whole model to one XNNPACK delegate,
and ExecuTorch's event tracer sees only that call's inputs and outputs (XNNPACK itself never logs
tensors): one row for the whole model. So the layers are read from a debug twin of the same program:
the source exported again at this input's shape and lowered with XnnpackPartitioner(per_op_mode=True)
(one delegate call per operator pattern), carrying the shipped file's weights (XNNPACK's named data,
keyed by the weights' hash, copied buffer by buffer), run with ETDump and a debug buffer, and read
with ExecuTorch's Inspector (its numeric-gap table maps each delegate call back to the torch.export
nodes it came from). The twin's final output is compared with the shipped file's: where they differ,
the difference is not in the weights and the notes say so. FP32 artifacts only: an INT8 twin would
need the compile's quantization repeated exactly, and FP16 programs wrap the model (not done)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

NAMES = "fx"  # debug handles map to torch.export nodes (edgekit.debug.source)
PRECISIONS = ("fp32",)  # the artifacts whose layers it reads


def read_layers(path, sample: dict, wanted: list[str], *, layout: dict | None, io: tuple, src=None,
                precision: str = "fp32", room_bytes: int = 0):
    """(arrays by source layer, notes, {layer: the layers fused into its delegate call})."""
    from ..runtimes.executorch import ExecuTorchRunner

    if src is None or src.kind != "torch":
        return {}, ["ExecuTorch layers are read from a debug build of the PyTorch source, which this run lacks"], {}
    if precision != "fp32":
        return {}, [f"ExecuTorch {precision}: the XNNPACK delegate shows only its inputs and outputs, and a per-op "
                    "debug twin is built for FP32 programs only (an INT8 twin would repeat the compile's "
                    "quantization); compare the outputs above, or debug the FP32 artifact"], {}
    with tempfile.TemporaryDirectory(prefix="edgekit-debug-et-") as tmp:
        twin, etrecord, copied = _twin(src, sample, Path(path), Path(tmp))
        got, fused, twin_out = _run_with_etdump(twin, etrecord, sample, wanted, Path(tmp), room_bytes)
    with ExecuTorchRunner(path, 1).bind(*io) as shipped:
        out = shipped.run(sample)
    notes = [f"layers from a per-op XNNPACK debug build with the shipped file's weights ({copied} weight buffer(s) "
             f"differed from the source's and were copied in); {len(got)} of {len(wanted)} source layers have a "
             "delegate call of their own (fused operators share one)"]
    diff = max((_rel(np.asarray(out[k]), np.asarray(v)) for k, v in zip(out, twin_out)), default=0.0)
    if diff > 1e-4:
        notes.append(f"the debug build's output differs from the shipped .pte's (relative error {diff:.3g}): the "
                     "shipped file differs in more than its weights; the layers below are the debug build's")
    return got, notes, fused


def _twin(src, sample: dict, shipped: Path, tmp: Path) -> tuple[Path, Path, int]:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from ..converters import torch_args

    with torch.no_grad():
        exported = torch.export.export(src.module, torch_args(sample))
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner(per_op_mode=True)],
                                       generate_etrecord=True)
    program = edge.to_executorch()
    twin, etrecord = tmp / "twin.pte", tmp / "twin.etrecord"
    data = bytearray(program.buffer)
    copied = _copy_weights(shipped.read_bytes(), data)
    twin.write_bytes(bytes(data))
    rec = program.get_etrecord()
    rec.update_representative_inputs([torch_args(sample)])
    rec.save(str(etrecord))
    return twin, etrecord, copied


def _copy_weights(shipped: bytes, twin: bytearray) -> int:
    """Each named-data buffer (XNNPACK's weights, keyed by a hash of the weights at build time) of the
    twin takes the shipped file's bytes under the same key; returns how many differed."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    have, want = deserialize_pte_binary(shipped).named_data, deserialize_pte_binary(bytes(twin)).named_data
    if have is None or want is None:
        return 0
    copied = 0
    for key, loc in want.pte_data.items():
        if key not in have.pte_data:
            continue
        old, new = want.buffers[loc.buffer_index], have.buffers[have.pte_data[key].buffer_index]
        if old == new or len(old) != len(new):
            continue
        at = twin.find(old)
        if at < 0 or twin.find(old, at + 1) >= 0:
            continue  # not found once: leave it (the notes' output comparison shows any difference)
        twin[at:at + len(old)] = new
        copied += 1
    return copied


def _run_with_etdump(twin: Path, etrecord: Path, sample: dict, wanted: list[str], tmp: Path, room_bytes: int):
    import torch
    from executorch.devtools import Inspector
    from executorch.runtime import Runtime

    from ..converters import torch_args

    order = {n: k for k, n in enumerate(wanted)}
    # Room for every delegate call's inputs and outputs: twice every source layer's bytes, plus slack
    # (ExecuTorch aborts the process when it runs out).
    room = 2 * room_bytes + 4 * sum(np.asarray(a).nbytes for a in sample.values()) + (64 << 20)
    program = Runtime.get().load_program(str(twin), enable_etdump=True, debug_buffer_size=room)
    outputs = program.load_method("forward").execute(list(torch_args(sample)))
    etdump, debug = tmp / "twin.etdp", tmp / "twin.dbg"
    program.write_etdump_result_to_file(str(etdump), str(debug))
    table = Inspector(etdump_path=str(etdump), etrecord=str(etrecord), debug_buffer_path=str(debug)) \
        .calculate_numeric_gap("MSE")
    got, fused = {}, {}
    for _, row in table.iterrows():
        names = [n for n in row["aot_ops"] if n in order]
        value = row["runtime_intermediate_output"]
        value = value[-1] if isinstance(value, (list, tuple)) else value
        if not names or not isinstance(value, torch.Tensor):
            continue
        last = max(names, key=order.get)
        got[last] = value.detach().float().numpy().copy()
        if len(names) > 1:
            fused[last] = sorted(set(names) - {last}, key=order.get)
    return got, fused, [o.detach().numpy() if hasattr(o, "detach") else np.asarray(o) for o in outputs]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    from .compare import metrics

    return metrics(a, b.reshape(a.shape))["rel_err"] if a.size == b.size else float("inf")
