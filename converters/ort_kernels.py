"""ONNX Runtime's own CPU kernel registry, read by the ONNX Runtime converters (onnx_ort.py, ort_fp16.py)
to say which operators it can run, at which opsets and dtypes."""
from __future__ import annotations


def cpu_kernels() -> dict:
    """(domain, op) -> [(first opset, last opset, {constraint: [types]})] from ONNX Runtime's own
    kernel registry, and (domain, op) -> the type constraint of its first input (from the schemas)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as C

    kernels: dict = {}
    for k in C.get_all_opkernel_def():
        if k.provider == "CPUExecutionProvider":
            kernels.setdefault((k.domain or "ai.onnx", k.op_name), []).append(
                (*k.version_range, dict(k.type_constraints)))
    first_input = {}
    for s in C.get_all_operator_schema():
        if s.inputs:
            first_input[(s.domain or "ai.onnx", s.name)] = s.inputs[0].typeStr
    return kernels, first_input


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
