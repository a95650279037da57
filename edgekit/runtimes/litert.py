"""LiteRT (TFLite) interpreter runner (`.tflite`), XNNPACK delegate on: what Android apps embed.

Tensors are fed through the model's default signature, whose inputs are `args_0, args_1, ...` in
the PyTorch model's argument order; the manifest's specs name them. Integer inputs are converted
to the flatbuffer's type (LiteRT stores token ids as int32) after a range check, never wrapped.
INT8 models may take and give quantized tensors: float inputs are quantized with the tensor's own
scale/zero point and outputs dequantized, so callers always speak the model's float values.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import deps
from ..errors import InputError
from ..manifest import TensorSpec
from .base import Runner


def _cast(name: str, a: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if a.dtype == dtype:
        return np.ascontiguousarray(a)
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(a.dtype, np.floating) and np.issubdtype(dtype, np.integer):
        if not scale:  # a float fed to an integer input with no scale would be silently truncated
            raise InputError(f"input {name!r}: the artifact takes {dtype} without quantization parameters, "
                             f"got {a.dtype}")
        info = np.iinfo(dtype)  # quantized I/O (INT8 models): q = round(x / scale) + zero_point
        return np.ascontiguousarray(np.clip(np.round(a / scale) + zero, info.min, info.max).astype(dtype))
    if np.issubdtype(dtype, np.integer) and np.issubdtype(a.dtype, np.integer) and a.size:
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise InputError(f"input {name!r}: values {a.min()}..{a.max()} do not fit the artifact's {dtype}")
    return np.ascontiguousarray(a.astype(dtype))


class LiteRTRunner(Runner):
    runtime = "litert"
    toolchain = "ai-edge-litert"

    def __init__(self, path: Path, threads: int | None = None, preserve_all_tensors: bool = False):
        """preserve_all_tensors: every intermediate tensor stays readable after a run (edgekit debug);
        XNNPACK then runs op by op, with the same results."""
        super().__init__(path, threads)
        deps.require("ai-edge-litert", "running .tflite artifacts (LiteRT interpreter)")
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads or 1,
                                       experimental_preserve_all_tensors=preserve_all_tensors)
        sigs = self.interpreter.get_signature_list()
        self._sig = "serving_default" if "serving_default" in sigs else next(iter(sigs), None)
        if self._sig is None:
            raise ValueError(f"{self.path}: the .tflite has no signature to run")
        self._runner = self.interpreter.get_signature_runner(self._sig)
        self._in_keys = list(sigs[self._sig]["inputs"])
        self._out_keys = list(sigs[self._sig]["outputs"])
        self._in_names, self._out_names = list(self._in_keys), list(self._out_keys)
        # Read once: the details (dtype, shape, quantization) are fixed for a static-shape model, and
        # the interpreter builds fresh dicts on every call, which would tax each timed run.
        ins, outs = self._runner.get_input_details(), self._runner.get_output_details()
        self._in_details = [ins[k] for k in self._in_keys]
        self._out_details = [outs[k] for k in self._out_keys]

    def bind(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> "LiteRTRunner":
        if len(inputs) == len(self._in_keys):
            self._in_names = [s.name for s in inputs]
        if len(outputs) == len(self._out_keys):
            self._out_names = [s.name for s in outputs]
        return self

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(n, tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name)
                for n, d in zip(self._in_names, self._in_details)]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(n, tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name)
                for n, d in zip(self._out_names, self._out_details)]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kwargs = {k: _cast(n, feeds[n], d) for k, n, d in zip(self._in_keys, self._in_names, self._in_details)}
        out = self._runner(**kwargs)
        result = {}
        for k, n, d in zip(self._out_keys, self._out_names, self._out_details):
            y, (scale, zero) = np.array(out[k]), d.get("quantization", (0.0, 0))
            # quantized outputs come back as the real values they stand for: (q - zero_point) * scale
            result[n] = ((y.astype(np.float32) - zero) * np.float32(scale)) if scale and y.dtype.kind in "iu" else y
        return result

    def artifact_io(self) -> dict:
        """What the .tflite file itself takes and gives (an app feeds these tensors directly)."""
        def one(n, k, d):
            scale, zero = d.get("quantization", (0.0, 0))
            return {"name": n, "tflite_signature_key": k, "shape": [int(x) for x in d["shape"]],
                    "dtype": np.dtype(d["dtype"]).name,
                    "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None}
        return {"signature": self._sig,
                "inputs": [one(n, k, d) for n, k, d in zip(self._in_names, self._in_keys, self._in_details)],
                "outputs": [one(n, k, d) for n, k, d in zip(self._out_names, self._out_keys, self._out_details)]}


# FLOPs of the ops that carry a model's arithmetic, from their tensors' shapes (2 per multiply-add);
# everything else counts 0. Enough to say which share of the work a delegate took.
def _op_flops(name: str, ins: list, outs: list) -> int:
    if not outs or not ins:
        return 0
    out = int(np.prod(outs[0]["shape"])) if len(outs[0]["shape"]) else 1
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) > 1 and len(ins[1]["shape"]) == 4:
        kh, kw = ins[1]["shape"][1:3]
        per_out = kh * kw * (ins[1]["shape"][3] if name == "CONV_2D" else 1)
        return 2 * out * int(per_out)
    if name == "CONV_3D" and len(ins) > 1 and len(ins[1]["shape"]) == 5:  # filter [kd, kh, kw, in, out]
        return 2 * out * int(np.prod(ins[1]["shape"][:4]))
    if name in ("FULLY_CONNECTED", "BATCH_MATMUL") and len(ins[0]["shape"]):
        return 2 * out * int(ins[0]["shape"][-1])
    return 0


def delegation_coverage(path: Path, shapes: list | None = None) -> dict:
    """Which of the model's operators the XNNPACK delegate took, by count and by FLOPs.

    The Python interpreter has no execution-plan accessor, but the delegate shows itself: after
    allocate_tensors() one DELEGATE node per partition is appended to the node list, whose inputs
    and outputs are the partition's boundary tensors. Walking back from those outputs to those
    inputs through the original nodes finds exactly the nodes each partition replaced.
    """
    from ai_edge_litert.interpreter import Interpreter

    def nodes(it):  # never keep it._interpreter across allocate_tensors (the interpreter refuses)
        w = it._interpreter
        return [(w.NodeName(i), [int(t) for t in w.NodeInputs(i)], [int(t) for t in w.NodeOutputs(i)])
                for i in range(w.NumNodes())]

    it = Interpreter(model_path=str(path), num_threads=1)
    if shapes:  # dynamic dims (-1 in the signature) get the example's sizes, so FLOPs mean something
        full = it._get_full_signature_list()  # {signature: {"inputs": {key: tensor index}}} (no runner: it pins buffers)
        order = list(next(iter(full.values()))["inputs"].values()) if full else []
        details = {d["index"]: d for d in it.get_input_details()}
        for index, shape in zip(order, shapes):
            if -1 in list(details[index].get("shape_signature", [])):
                it.resize_tensor_input(index, list(shape))
    original = nodes(it)
    it.allocate_tensors()  # the default XNNPACK delegate is applied here
    after = nodes(it)
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    producer = {t: i for i, (_, _, outs) in enumerate(original) for t in outs}
    delegated: set[int] = set()
    for name, ins, outs in after[len(original):]:
        if name != "DELEGATE":
            continue
        stop, stack = set(ins), list(outs)
        while stack:
            t = stack.pop()
            i = producer.get(t)
            if t in stop or i is None or i in delegated:
                continue
            delegated.add(i)
            stack.extend(original[i][1])

    def flops(i):
        name, ins, outs = original[i]
        return _op_flops(name, [tensors[t] for t in ins if t in tensors], [tensors[t] for t in outs if t in tensors])

    left: dict[str, int] = {}
    for i, (name, _, _) in enumerate(original):
        if i not in delegated:
            left[name] = left.get(name, 0) + 1
    f_all = sum(flops(i) for i in range(len(original)))
    f_in = sum(flops(i) for i in delegated)
    total = len(original)
    return {"backend": "xnnpack", "ops_total": total, "ops_delegated": len(delegated),
            "ops_share": round(len(delegated) / total, 4) if total else None, "flops_total": f_all,
            "flops_share": round(f_in / f_all, 4) if f_all else None, "not_delegated": left,
            "partitions": sum(1 for n in after[len(original):] if n[0] == "DELEGATE")}


RUNNER = LiteRTRunner
