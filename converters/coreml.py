"""PyTorch -> Core ML ML Program (`.mlpackage`, a folder) with coremltools: FP16, FP32, INT8 weights.

The model goes through torch.export (`run_decompositions({})`: functional ATen, nothing decomposed,
which is what coremltools' torch frontend maps op by op); an op the frontend has no conversion for
but PyTorch can decompose (e.g. `new_ones` -> `full`, `__and__` -> `bitwise_and` on MiniLM) gets
PyTorch's own decomposition of just that op, and the artifact records which. Then `ct.convert` to an
ML Program for a minimum deployment target (iOS16 unless the candidate's options say otherwise):
- fp16 (default): weights and arithmetic in float16 (Core ML's GPU and Neural Engine compute fp16);
- fp32: float32 weights and arithmetic (CPU/GPU only; the Neural Engine is fp16);
- int8: the fp16 program with its weights quantized to int8 (per-channel symmetric) by
  `coremltools.optimize.coreml.linear_quantize_weights`; arithmetic stays fp16.
- W8A8 (variant "w8a8", options {"activations": "int8"}): needs coremltools' PT2E quantizer
  (CoreMLQuantizer), which is built on `torch.ao.quantization.quantizer`; see `_w8a8`.
Inputs and outputs keep the model's names; int64 inputs (token ids) are int32 in Core ML.

Core ML predictions run only on macOS (coremltools' libcoremlpython), so on another host the
package is checked without running it (`check_package`: reload, I/O names/shapes/types, weight
precision, spec version and opset against the deployment target, every op in coremltools' MIL
op registry for that opset) and verification says "not-run" until `edgekit build` on a Mac.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import ConvertResult, Converter, torch_args, torch_dynamic_shapes, torch_source

DEFAULT_TARGET = "iOS16"
DEFAULT_COMPUTE_UNITS = "ALL"
# coremltools' own default weight_threshold: linear_quantize_weights leaves tensors of at most this
# many elements in float (biases, norms, tiny layers); the weight check counts the larger ones.
LARGE_WEIGHT = 2048
# The user-defined metadata key that carries the compute units into the package (the runner reads it).
COMPUTE_UNITS_KEY = "edgekit.compute_units"
# numpy dtype of the model's tensors -> the Core ML multi-array type it becomes.
_IO_TYPES = {"float32": "FLOAT32", "float16": "FLOAT16", "float64": "FLOAT32", "int64": "INT32", "int32": "INT32"}
# MIL weight types each precision must store its large weights in.
_WEIGHT_TYPES = {"fp16": {"FLOAT16"}, "fp32": {"FLOAT32"}, "int8": {"INT8", "UINT8"}}
_FLOAT_TYPES = {"FLOAT16", "FLOAT32", "FLOAT64", "BFLOAT16"}
_QUANT_TYPES = {"INT8", "UINT8", "INT4", "UINT4", "UINT6", "UINT3", "UINT2", "UINT1", "FLOAT8E4M3FN", "FLOAT8E5M2"}


def _ct():
    import coremltools as ct

    return ct


def _target(name: str):
    ct = _ct()
    t = getattr(ct.target, str(name), None)
    if t is None or not str(name).startswith("iOS"):
        raise ValueError(f"minimum_deployment_target {name!r} is not one of coremltools' iOS targets: "
                         + ", ".join(x.name for x in ct.target if x.name.startswith("iOS")))
    if t < ct.target.iOS15:
        raise ValueError(f"an ML Program needs iOS15 or later; {name} would need the older neuralnetwork format")
    return t


def _kind(target) -> str:
    """The name coremltools' torch frontend looks a node up by (InternalTorchIRNode.from_exir_node)."""
    try:
        return target.name()
    except Exception:  # noqa: BLE001 — not an OpOverload: the frontend falls back the same way
        return getattr(target, "__name__", str(target))


def frontend_has(target) -> bool:
    """Does coremltools' torch frontend have a conversion for this node target? Its own lookup:
    `get_func` lower-cases, drops `aten::`/`.default`/`.Tensor`/`.Scalar` and a trailing `_`."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    return _TORCH_OPS_REGISTRY.get_func(_kind(target)) is not None


def _missing(ep) -> list:
    return [n for n in ep.graph.nodes if n.op == "call_function" and not frontend_has(n.target)]


def for_coreml(exported) -> tuple[object, list[str], list]:
    """-> (program for ct.convert, ops decomposed for it, nodes the frontend still cannot convert).
    `run_decompositions({})` first; then, for ops the frontend lacks, PyTorch's default
    decomposition of exactly those ops (a few rounds: a decomposition may use another missing op)."""
    import torch

    ep = exported.run_decompositions({})
    defaults = torch.export.default_decompositions()
    decomposed: list[str] = []
    for _ in range(3):
        missing = {n.target for n in _missing(ep)}
        table = {t: defaults[t] for t in missing if isinstance(t, torch._ops.OpOverload) and t in defaults}
        if not table:
            break
        decomposed += sorted(str(t) for t in table)
        ep = ep.run_decompositions(table)
    return ep, decomposed, _missing(ep)


def preflight(ctx) -> dict:
    """Each ATen op of the program ct.convert would get, looked up in coremltools' torch frontend
    registry the way the frontend looks it up."""
    refused = ctx.needs_torch("Core ML")
    if refused:
        return refused
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    from edgekit.graphops import list_ops, op_name, user_frame

    ep, decomposed, missing = for_coreml(ctx.exported)
    described = {o["node"]: o for o in list_ops(ep.graph)}
    unsupported = []
    for n in missing:
        o = described.get(n.name) or {"op": op_name(n.target), "node": n.name, "dtypes": [],
                                      "source": user_frame(n.meta.get("stack_trace")), "module": ""}
        unsupported.append({**o, "why": f"coremltools' torch frontend has no conversion for {_kind(n.target)} "
                                        "and PyTorch has no decomposition of it into ops the frontend has"})
    table = (f"coremltools torch frontend op registry ({len(_TORCH_OPS_REGISTRY.name_to_func_mapping)} ops, "
             "coremltools " + _ct().__version__ + ")")
    return ctx.verdict(unsupported, table=table, extra={"decomposed": decomposed} if decomposed else None)


def _io(work) -> tuple[list, list, dict]:
    """(ct inputs, ct outputs, artifact_io): the model's tensor names; int64 becomes int32."""
    import numpy as np

    ct = _ct()
    ins, outs, rec = [], [], {"inputs": [], "outputs": []}
    for t in work.info["inputs"]:
        if t["dtype"] not in _IO_TYPES:
            raise ValueError(f"input {t['name']!r} is {t['dtype']}; Core ML inputs are float32, float16 or "
                             "int32 arrays")
        np_type = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32}[_IO_TYPES[t["dtype"]]]
        ranges = {a: (lo, hi) for a, _, lo, hi in t.get("dynamic") or ()}  # dynamic dims: RangeDim, default opt
        shape = ct.Shape(shape=[ct.RangeDim(lower_bound=ranges[i][0], upper_bound=ranges[i][1], default=s)
                                if i in ranges else s for i, s in enumerate(t["shape"])]) if ranges else tuple(t["shape"])
        ins.append(ct.TensorType(name=t["name"], shape=shape, dtype=np_type))
        rec["inputs"].append(_io_entry(t))
    for t in work.info["outputs"]:
        np_type = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32}.get(_IO_TYPES.get(t["dtype"], ""))
        outs.append(ct.TensorType(name=t["name"], dtype=np_type))
        rec["outputs"].append(_io_entry(t))
    casts = [f"{e['name']}: {e['model_dtype']} -> {e['dtype']}" for e in rec["inputs"] + rec["outputs"]
             if e["dtype"] != e["model_dtype"]]
    if casts:
        rec["casts"] = casts
        rec["note"] = ("Core ML arrays are float32, float16 or int32 (no int64): an app feeds these tensors in the "
                       "package's type (MLMultiArray); the edgekit runner converts, integers after a range check")
    return ins, outs, rec


def _io_entry(t: dict) -> dict:
    coreml = _IO_TYPES.get(t["dtype"], t["dtype"].upper())
    return {"name": t["name"], "shape": list(t["shape"]), "dtype": coreml.lower(),
            "coreml_type": coreml, "model_dtype": t["dtype"]}


def _coreml_pt2e():
    """coremltools' PT2E quantizer for Core ML and the PT2E functions it works with, or ValueError
    saying why these versions cannot have them (checked before anything is built)."""
    import importlib.metadata
    import importlib.util

    import torch

    def refuse(why) -> ValueError:
        # The first line is what the manifest and the console keep (edgekit.steps.root_cause): the whole reason.
        return ValueError(
            f"Core ML W8A8 cannot be built here: coremltools' CoreMLQuantizer needs torch.ao.quantization.quantizer, "
            f"which torch {torch.__version__} lacks, and linear_quantize_activations needs Core ML predictions "
            "(macOS). Use coreml-int8 (int8 weights)\n"
            f"coremltools {importlib.metadata.version('coremltools')}: the PT2E quantizer for Core ML "
            "(coremltools.optimize.torch.quantization._coreml_quantizer.CoreMLQuantizer) imports "
            f"torch.ao.quantization.quantizer, which PyTorch moved to torchao ({why}); coremltools' other route, "
            "coremltools.optimize.coreml.experimental.linear_quantize_activations, calibrates by running Core ML "
            "predictions, which need macOS (edgekit does not take that route). This converter builds W8A8 with a "
            "PyTorch that still has torch.ao.quantization.quantizer (one of the versions coremltools is tested with).")

    for needed in ("torch.ao.quantization.quantizer", "torch.ao.quantization.quantize_pt2e"):
        if importlib.util.find_spec(needed) is None:
            raise refuse(f"no module named {needed!r}")
    try:
        from coremltools.optimize.torch.quantization import LinearQuantizerConfig
        from coremltools.optimize.torch.quantization._coreml_quantizer import CoreMLQuantizer
        from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as e:
        raise refuse(e) from e
    return LinearQuantizerConfig, CoreMLQuantizer, prepare_pt2e, convert_pt2e


def _w8a8(work, src, module, example, tools) -> tuple:
    """W8A8 with coremltools' PT2E quantizer, calibrated on the model's calibration samples ->
    (quantized module, info). Not exercised here (`_coreml_pt2e` refuses on torch >= 2.10); written
    after coremltools' own CoreMLQuantizer + prepare_pt2e/convert_pt2e example."""
    import torch

    from .pt2e import calibration_samples

    LinearQuantizerConfig, CoreMLQuantizer, prepare_pt2e, convert_pt2e = tools
    config = LinearQuantizerConfig.from_dict({"global_config": {
        "quantization_scheme": "symmetric", "milestones": [0, 0, 10, 10],
        "activation_dtype": torch.quint8, "weight_dtype": torch.qint8, "weight_per_channel": True}})
    calib, calib_source = calibration_samples(work, src)
    prepared = prepare_pt2e(torch.export.export(module, torch_args(example)).module(), CoreMLQuantizer(config))
    with torch.no_grad():
        for s in calib:
            prepared(*torch_args(s))
    return convert_pt2e(prepared), {"weights": "int8 per-channel symmetric (CoreMLQuantizer, PT2E)",
                                    "activations": "int8, ranges from calibration (static)",
                                    "calibration": calib_source, "calibration_samples": len(calib)}


def convert(work, candidate, out_path: Path) -> ConvertResult:
    import torch

    precision = candidate.precision
    if precision not in _WEIGHT_TYPES:
        raise ValueError(f"the Core ML converter builds fp16, fp32 or int8, not {precision}")
    opts = dict(candidate.options)
    w8a8 = opts.get("activations") == "int8"
    if w8a8 and precision != "int8":
        raise ValueError("activations: int8 goes with precision int8")
    tools = _coreml_pt2e() if w8a8 else None  # refuses before anything is built
    ct = _ct()
    target_name = opts.get("minimum_deployment_target", "iOS17" if w8a8 else DEFAULT_TARGET)
    target = _target(target_name)
    units = str(opts.get("compute_units", DEFAULT_COMPUTE_UNITS)).upper()
    if units not in ct.ComputeUnit.__members__:
        raise ValueError(f"compute_units {units!r}: one of {', '.join(ct.ComputeUnit.__members__)}")
    src = torch_source(work, "Core ML")
    module, example = src.module, src.example
    info: dict = {"name": "coremltools", "version": ct.__version__, "format": "mlprogram",
                  "minimum_deployment_target": target.name, "compute_units": units}
    res = ConvertResult(info, runs_on={"os": "Darwin", "runtime": "coremltools"})
    if w8a8:
        module, info["quantization"] = _w8a8(work, src, module, example, tools)
    ins, outs, res.artifact_io = _io(work)
    with torch.no_grad():
        exported = torch.export.export(module, torch_args(example),
                                       dynamic_shapes=torch_dynamic_shapes(example, src.dynamic))
    program, decomposed, missing = for_coreml(exported)
    if decomposed:
        info["decomposed_for_coreml"] = decomposed
    if missing:
        from edgekit.graphops import op_name

        raise ValueError("coremltools' torch frontend has no conversion for "
                         + ", ".join(sorted({op_name(n.target) for n in missing})))
    fp = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    model = ct.convert(program, convert_to="mlprogram", inputs=ins, outputs=outs, compute_precision=fp,
                       minimum_deployment_target=target, compute_units=ct.ComputeUnit[units])
    info["compute_precision"] = "float32" if precision == "fp32" else "float16"
    if precision == "int8" and not w8a8:
        import coremltools.optimize.coreml as cto

        op_config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=LARGE_WEIGHT)
        model = cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=op_config))
        info["quantization"] = {"method": "coremltools.optimize.coreml.linear_quantize_weights",
                                "mode": str(getattr(op_config.mode, "name", op_config.mode)).lower(),
                                "granularity": str(getattr(op_config.granularity, "name",
                                                           op_config.granularity)).lower(),
                                "weight_threshold": op_config.weight_threshold,
                                "weights": f"int8 per-channel symmetric, tensors > {LARGE_WEIGHT} elements",
                                "activations": "float16 (weights dequantized for fp16 compute)"}
    info["weights"] = info["quantization"]["weights"] if w8a8 else {
        "fp16": "float16", "fp32": "float32",
        "int8": f"int8 per-channel symmetric (tensors > {LARGE_WEIGHT} elements), arithmetic float16"}[precision]
    model.user_defined_metadata[COMPUTE_UNITS_KEY] = units
    model.short_description = f"{work.info['name']} ({precision}) compiled by edgekit"
    _save_atomically(model, Path(out_path))
    res.artifact_checks = check_package(out_path, work.info["inputs"], work.info["outputs"], precision, target.name)
    return res


def _save_atomically(model, out_path: Path) -> None:
    """Write the package beside out_path, then rename it into place: a crash never leaves a
    half-written package at out_path. (coremltools insists on the .mlpackage suffix.)"""
    tmp = out_path.with_name(f".{out_path.stem}.partial.mlpackage")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save(str(tmp))
    if out_path.exists():
        shutil.rmtree(out_path)
    tmp.replace(out_path)


# --- checks of a saved package, without Core ML itself (no macOS needed) -----------------------

def _ops(block):
    for op in block.operations:
        yield op
        for b in op.blocks:
            yield from _ops(b)


def _tensor(value) -> tuple[str, int] | None:
    """(MIL data type name, element count) of a tensor-valued attribute/const, else None."""
    from coremltools.proto import MIL_pb2

    if not value.type.HasField("tensorType"):
        return None
    t = value.type.tensorType
    n = 1
    for d in t.dimensions:
        if not d.HasField("constant"):
            return None
        n *= d.constant.size
    return MIL_pb2.DataType.Name(t.dataType), n


# Inputs/attributes of constexpr ops that are quantization parameters, not weights: a per-row
# scale of a 30522-row embedding table is 30522 float16 values, yet the table itself is int8.
_QUANT_PARAMS = ("scale", "zero_point", "offset")


def weight_census(spec) -> dict:
    """Large constant tensors (> LARGE_WEIGHT elements) by MIL data type: [count, elements]. A
    const op's value, and the tensors constexpr ops (dequantize, LUT, sparse) carry as attributes;
    quantization scales and offsets are not counted."""
    census: dict[str, list[int]] = {}
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            ops = list(_ops(block))
            params = {b.name for op in ops if op.type.startswith("constexpr_") for k in _QUANT_PARAMS
                      if k in op.inputs for b in op.inputs[k].arguments if b.name}
            for op in ops:
                if op.type != "const" and not op.type.startswith("constexpr_"):
                    continue
                if op.type == "const" and op.outputs and op.outputs[0].name in params:
                    continue
                # iOS16/17 constexpr ops carry their tensors as attributes; iOS18 ones as inline inputs
                values = [(k, v) for k, v in op.attributes.items()]
                values += [(k, b.value) for k, arg in op.inputs.items() for b in arg.arguments if b.HasField("value")]
                for key, value in values:
                    found = None if key in _QUANT_PARAMS else _tensor(value)
                    if found and found[1] > LARGE_WEIGHT and found[0] in _FLOAT_TYPES | _QUANT_TYPES:
                        row = census.setdefault(found[0], [0, 0])
                        row[0] += 1
                        row[1] += found[1]
    return census


def _io_failures(kind: str, got, expected: list[dict]) -> tuple[list[str], str]:
    from coremltools.proto import FeatureTypes_pb2

    names = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name
    have = []
    for f in got:
        if f.type.WhichOneof("Type") != "multiArrayType":
            have.append((f.name, None, f.type.WhichOneof("Type")))
        else:
            have.append((f.name, [int(s) for s in f.type.multiArrayType.shape], names(f.type.multiArrayType.dataType)))
    want = [(t["name"], list(t["shape"]), _IO_TYPES.get(t["dtype"], t["dtype"])) for t in expected]
    if [h[0] for h in have] != [w[0] for w in want]:
        return [f"{kind}: the package has {[h[0] for h in have]}, expected {[w[0] for w in want]}"], ""
    fails = [f"{kind[:-1]} {w[0]}: the package has {h[2]}{h[1]}, expected {w[2]}{w[1]}"
             for h, w in zip(have, want) if (h[1], h[2]) != (w[1], w[2])]
    return fails, ", ".join(f"{w[0]} {w[2]}{w[1]}" for w in want)


def check_package(path, inputs: list[dict], outputs: list[dict], precision: str, target: str) -> dict:
    """What can be checked of a saved .mlpackage without running it. -> {"failures": [...],
    "passed": [...], "spec_version", "opset", "weights", "ops"}; each failure a sentence."""
    ct = _ct()
    from coremltools.converters.mil.mil.ops.helper import _get_version_of_op
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    failures: list[str] = []
    passed: list[str] = []
    res: dict = {"failures": failures, "passed": passed}
    try:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as e:  # noqa: BLE001 — the check's finding
        failures.append(f"the package does not reload with coremltools: {type(e).__name__}: {str(e)[:200]}")
        return res
    passed.append(f"reloads with coremltools {ct.__version__} (ct.models.MLModel, skip_model_load)")
    if spec.WhichOneof("Type") != "mlProgram":
        failures.append(f"the package holds a {spec.WhichOneof('Type')} model, not an ML Program")
        return res
    for kind, got, expected in (("inputs", spec.description.input, inputs),
                                ("outputs", spec.description.output, outputs)):
        fails, said = _io_failures(kind, got, expected)
        failures += fails
        if not fails:
            passed.append(f"{kind} as the model's: {said}")
    census = weight_census(spec)
    res["weights"] = {k: {"tensors": v[0], "elements": v[1]} for k, v in census.items()}
    want = _WEIGHT_TYPES[precision]
    wrong = {k: v for k, v in census.items() if k not in want and k in _FLOAT_TYPES | _QUANT_TYPES}
    right = sum(v[0] for k, v in census.items() if k in want)
    described = ", ".join(f"{v[0]} {k}" for k, v in sorted(census.items())) or "none"
    if wrong:
        failures.append(f"weights: {precision} asks for {'/'.join(sorted(want))} weight tensors, but the package "
                        f"stores " + ", ".join(f"{v[0]} tensor(s) ({v[1]} elements) as {k}" for k, v in wrong.items())
                        + f" (tensors > {LARGE_WEIGHT} elements)")
    elif precision == "int8" and not right:
        failures.append(f"weights: int8 was requested but no weight tensor > {LARGE_WEIGHT} elements is int8; "
                        "the package would be float under an int8 label")
    else:
        passed.append(f"weights {precision}: tensors > {LARGE_WEIGHT} elements by type: {described}")
    want_t = getattr(ct.target, target)
    res["spec_version"] = spec.specificationVersion
    if spec.specificationVersion > int(want_t):
        failures.append(f"specificationVersion {spec.specificationVersion} is newer than {target}'s ({int(want_t)}): "
                        f"devices on {target} cannot load it")
    else:
        passed.append(f"specificationVersion {spec.specificationVersion} <= {target}'s ({int(want_t)})")
    opset_of = {v: k for k, v in ct._OPSET.items()}
    counts: dict[str, int] = {}
    for name, fn in spec.mlProgram.functions.items():
        version = opset_of.get(fn.opset)
        res["opset"] = fn.opset
        if version is None or version > int(want_t):
            failures.append(f"function {name}: opset {fn.opset} is newer than {target}'s "
                            f"({ct._OPSET.get(int(want_t))})")
        # ops are judged by the opset the deployment target has (a newer program is flagged above)
        opset = ct.target(min(version if version is not None else int(want_t), int(want_t)))
        here: dict[str, int] = {}
        for block in fn.block_specializations.values():
            for op in _ops(block):
                here[op.type] = here.get(op.type, 0) + 1
        for op_type, n in sorted(here.items()):
            counts[op_type] = counts.get(op_type, 0) + n
            variants = SSAOpRegistry.core_ops.get(op_type)
            if not variants:
                failures.append(f"op {op_type} (x{n}) is not in coremltools' MIL op registry")
                continue
            try:
                _get_version_of_op(variants, opset)
            except ValueError:
                failures.append(f"op {op_type} (x{n}) is not in the {opset.name} opset ({ct._OPSET[int(opset)]}); "
                                f"it starts at {min(variants).name}")
    res["ops"] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    if counts and not any(f.startswith("op ") for f in failures):
        passed.append(f"all {len(counts)} op types ({sum(counts.values())} ops) are in coremltools' MIL op "
                      f"registry for {res.get('opset')}")
    return res


# Folder artifact: a Core ML ML Program package. Dynamic dims: RangeDim where torch.export keeps them.
CONVERTER = Converter(name="coreml", format="mlpackage", suffix=".mlpackage", toolchains=("torch", "coremltools"),
                      convert=convert, preflight=preflight, shape_support="try")
