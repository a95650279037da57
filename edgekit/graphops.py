"""The operators of an exported model, each with the user's source line, for check and error messages.

torch.export keeps a stack trace on every node; the user's line is the innermost frame outside
PyTorch itself (for `self.fc(x)` that is the caller's line, not torch/nn/modules/linear.py). The
same helpers map toolchain errors back to nodes: a converter's message names an op
("aten.cumsum", "aten::cumsum", "%cumsum") or carries the node's original traceback.
Runs in child processes (imports torch).
"""
from __future__ import annotations

import functools
import os
import re

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')


# Toolchains whose frames are never the user's line (found without importing them).
_TOOLCHAIN_PACKAGES = ("onnxscript", "onnx_ir", "onnx", "onnxruntime", "executorch", "litert_torch", "jax", "jaxlib",
                       "torchao")


@functools.lru_cache(maxsize=1)
def _not_user_dirs() -> tuple[str, ...]:
    """Folders whose frames are never the user's line: PyTorch and the other toolchains, the standard
    library, edgekit itself."""
    import importlib.util
    import sysconfig

    import torch

    from . import converters, targets

    dirs = [os.path.dirname(m.__file__) for m in (torch, converters, targets)]
    dirs += [os.path.dirname(os.path.abspath(__file__)), sysconfig.get_paths()["stdlib"]]
    for name in _TOOLCHAIN_PACKAGES:
        spec = importlib.util.find_spec(name)
        dirs += list(spec.submodule_search_locations or []) if spec else []
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


def _is_user(path: str) -> bool:
    return not path.startswith(_not_user_dirs()) and not path.startswith("<")


def user_frame(stack_trace: str | None) -> dict | None:
    """{'file', 'line', 'function', 'code'} of the innermost frame outside torch, or None."""
    if not stack_trace:
        return None
    mine = [f for f in (m.groups() for m in _FRAME.finditer(stack_trace)) if _is_user(f[0])]
    if not mine:
        return None
    f, line, func, code = mine[-1]
    return {"file": f, "line": int(line), "function": func, "code": code.strip()[:160]}


def op_name(target) -> str:
    """'aten.cumsum.default' for an aten/edge op overload; the callable's name otherwise."""
    import torch

    for t in (target, getattr(target, "_op", None)):  # ExecuTorch's EdgeOpOverload wraps the aten overload
        if isinstance(t, torch._ops.OpOverload):
            return str(t)
    if isinstance(target, torch._ops.HigherOrderOperator):  # torch.cond, while_loop ...: real operators
        return f"higher_order.{target.name()}"
    return getattr(target, "__name__", str(target))


def node_values(node) -> list:
    """The node's output value(s) as recorded by the export (fake tensors, sizes), as a list."""
    val = node.meta.get("val")
    return list(val) if isinstance(val, (list, tuple)) else [val]


def _dtypes(node) -> list[str]:
    return sorted({str(v.dtype).replace("torch.", "") for v in node_values(node) if hasattr(v, "dtype")})


# Bookkeeping nodes torch.export adds (shape asserts, symbolic sizes): not operators a toolchain converts.
_BOOKKEEPING = ("_assert_scalar", "_assert_tensor_metadata", "sym_size", "sym_constrain_range", "getitem",
                "_assert_async", "sym_numel", "sym_stride")


def is_bookkeeping(name: str) -> bool:
    return any(b in name for b in _BOOKKEEPING) or not ("." in name)  # operator.ge etc. on sizes


def list_ops(graph) -> list[dict]:
    """One entry per compute node: op, node name, output dtypes, user source, module path."""
    ops = []
    for n in graph.nodes:
        if n.op != "call_function":
            continue
        name = op_name(n.target)
        if is_bookkeeping(name):
            continue
        stack = n.meta.get("nn_module_stack") or {}
        ops.append({"op": name, "node": n.name, "dtypes": _dtypes(n), "source": user_frame(n.meta.get("stack_trace")),
                    "module": next(reversed(stack.values()))[0] if stack else ""})
    return ops


def summarize(ops: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in ops:
        counts[o["op"]] = counts.get(o["op"], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _innermost(e: BaseException) -> BaseException:
    seen = [e]
    while (nxt := e.__cause__ or (None if e.__suppress_context__ else e.__context__)) is not None and nxt not in seen:
        seen.append(nxt)
        e = nxt
    return e


def _user_frame_of(e: BaseException) -> dict | None:
    """The deepest frame of the user's own code in this exception's traceback."""
    import traceback

    mine = [f for f in traceback.extract_tb(e.__traceback__) if _is_user(f.filename)]
    if not mine:
        return None
    f = mine[-1]
    return {"file": f.filename, "line": f.lineno, "function": f.name, "code": (f.line or "").strip()[:160]}


def export_error(e: BaseException) -> dict:
    """What torch.export's failure says, with the user's line from the traceback (non-strict
    export runs the user's forward, so the failing line is a real frame of the exception)."""
    from .errors import root_cause

    src = None
    chain, inner = [], e  # the innermost exception (e.g. the guard inside the user's forward) first
    while inner is not None and inner not in chain:
        chain.append(inner)
        inner = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
    for exc in reversed(chain):
        if (src := _user_frame_of(exc)) is not None:
            break
    text = "\n".join(str(x) for x in chain)
    kind = "export"
    if "data-dependent" in text or any("GuardOnDataDependent" in type(x).__name__ for x in chain):
        kind = "data-dependent-control-flow"
    elif "Dynamic" in type(e).__name__ or "dynamic shape" in text.lower():
        kind = "dynamic-shape"
    return {"kind": kind, "error": root_cause(e), "source": src or source_in_text(text)}


def source_in_text(text: str) -> dict | None:
    """Toolchains often quote the node's original traceback ('Original traceback: File ...')."""
    return user_frame(text.replace("\r", ""))


_OP_IN_TEXT = re.compile(r"\baten(?:\.|::)([A-Za-z0-9_]+)|%([A-Za-z0-9_]+)")


def ops_in_text(text: str, ops: list[dict]) -> list[dict]:
    """The model's ops that a toolchain message names (by aten op or by node name), first mention first."""
    by_base: dict[str, dict] = {}
    for o in ops:
        parts = o["op"].split(".")
        by_base.setdefault(parts[1] if len(parts) > 2 else o["op"], o)
    by_node = {o["node"]: o for o in ops}
    found: list[dict] = []
    for m in _OP_IN_TEXT.finditer(text):
        base, node = m.groups()
        hit = (by_base.get(base) if base else None) or by_node.get(node or "") \
            or (by_node.get(re.sub(r"^aten_|_default$", "", node)) if node else None)
        if hit and hit not in found:
            found.append(hit)
    return found


def node_flops(node) -> int:
    """FLOPs of one graph node from PyTorch's own FLOP formulas (torch.utils.flop_counter: matmuls,
    convolutions, attention); aten.linear, which they lack, is 2 * out elements * in features.
    Elementwise and data-movement ops count 0: a roofline, not an exact census."""
    from torch.fx import Node
    from torch.utils._pytree import tree_map_only
    from torch.utils.flop_counter import flop_registry

    packet = getattr(node.target, "overloadpacket", None) or getattr(getattr(node.target, "_op", None),
                                                                      "overloadpacket", None)
    out = node.meta.get("val")
    try:
        args, kwargs = tree_map_only(Node, lambda a: a.meta.get("val"), (node.args, node.kwargs))
        if packet in flop_registry:
            return _at_example_sizes(flop_registry[packet](*args, **kwargs, out_val=out))
        if str(packet) == "aten.linear" and hasattr(out, "numel"):
            return _at_example_sizes(2 * out.numel() * args[0].shape[-1])
    except Exception:  # noqa: BLE001 — a shape the formula does not know: count it as 0, not crash
        return 0
    return 0


def _at_example_sizes(n) -> int:
    """A FLOP count as an int; with dynamic dims it is a symbolic expression, counted at the
    example's sizes (its hint), without adding a guard to the exported program."""
    import torch

    if isinstance(n, torch.SymInt):
        from torch.fx.experimental.symbolic_shapes import optimization_hint

        return int(optimization_hint(n, fallback=0))
    return int(n)


def explain_failure(stage: str, toolchain: str, e: BaseException, ops_file) -> tuple[str, str | None]:
    """A toolchain's exception as (message, hint): the stage, the toolchain, the operator it names
    (with node and the user's source line, from the export's op list) and a known rewrite."""
    import json
    from pathlib import Path

    from .findings import rewrite_for, where
    from .errors import root_cause

    text = str(e)
    ops = json.loads(Path(ops_file).read_text())["ops"] if ops_file and Path(ops_file).exists() else []
    # Blame comes from the actual cause, the innermost exception: an outer message that quotes the
    # node being processed (a detection head's failure once named aten.batch_norm at the first conv's
    # line) is context, not the cause. Its own op, user frame or quoted traceback, in that order.
    cause = _innermost(e)
    cause_text = str(cause)
    named = ops_in_text(cause_text, ops) if cause is not e else ops_in_text(text, ops)
    src = _user_frame_of(cause) or source_in_text(cause_text) or (named[0]["source"] if named else None) \
        or (source_in_text(text) if cause is e else None)
    msg = f"{stage} with {toolchain} failed"
    if named:
        msg += f" at operator {named[0]['op']} (node {named[0]['node']})"
    if src:
        msg += f", from {where(src)}"
    msg += f": {root_cause(e)}"
    tip = rewrite_for([{"op": o["op"], "why": text} for o in named] or [{"op": "", "why": text}])
    return msg, tip


def cost(exported) -> dict:
    """FLOPs (matmuls, convolutions, attention) and a lower bound on bytes moved: the weights once
    plus every compute node's output once. Their ratio is the model's arithmetic intensity.
    Counted on the core-ATen decomposition, where conv2d/linear/matmul/attention have become the
    convolution/mm/bmm ops PyTorch's FLOP formulas know."""
    flops, act = 0, 0
    exported = exported.run_decompositions()
    for n in exported.graph.nodes:
        if n.op != "call_function" or is_bookkeeping(op_name(n.target)):
            continue
        flops += node_flops(n)
        for v in node_values(n):
            if hasattr(v, "numel") and hasattr(v, "element_size"):
                try:
                    act += int(v.numel()) * v.element_size()
                except Exception:  # noqa: BLE001 — a data-dependent size: not countable
                    pass
    weights = sum(t.numel() * t.element_size() for t in exported.state_dict.values())
    weights += sum(t.numel() * t.element_size() for t in exported.constants.values() if hasattr(t, "numel"))
    moved = weights + act
    return {"flops": int(flops), "weight_bytes": int(weights), "activation_bytes": int(act),
            "arithmetic_intensity": round(flops / moved, 3) if moved else None,
            "method": "core-ATen graph of torch.export; FLOPs from torch.utils.flop_counter formulas (matmul, "
                      "convolution, attention); elementwise ops count 0"}
