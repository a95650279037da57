"""ONNX -> TensorRT, in two halves: the host prepares, the device builds.

A TensorRT engine is specific to the GPU and the TensorRT version that built it, so it is built
on the device (`python -m edgekit build BUNDLE`, edgekit.device_build). `compile` prepares
what that build needs and checks what can be checked without TensorRT:
- a TensorRT-ready ONNX: constants folded (onnxscript's optimizer), shapes checked (a symbolic dim
  must be one of the model's dynamic dims: its bounds become the engine's optimization profile,
  min/opt/max per input, recorded in the manifest and used by the device build), and for
  FP16 the weights and arithmetic cast to float16 with float32 inputs/outputs (ONNX Runtime's
  float16 converter). TensorRT 11 builds strongly typed networks only (BuilderFlag.FP16 is gone),
  so precision is decided in the ONNX itself; TensorRT 10 (JetPack 6) takes the same file with the
  STRONGLY_TYPED network flag. INT8 takes explicit Q/DQ nodes (edgekit's ORT quantizer output).
- that ONNX run on ONNX Runtime (CPU) against the reference: the numerics of the graph the device
  will build, before any device time is spent. The engine itself is never faked here.

`build_engine` is the device half, written against TensorRT's Python API (builder, ONNX parser,
builder config with a workspace limit and a timing cache).
"""
from __future__ import annotations

from pathlib import Path

from . import ConvertResult, Converter

BUILD_COMMAND = "python -m edgekit build {bundle}"
INSTALL = ("on a Jetson TensorRT comes with JetPack (`sudo apt-get install python3-libnvinfer`); elsewhere "
           "`pip install tensorrt cuda-python` on a machine with an NVIDIA GPU")
WORKSPACE_BYTES = 1 << 30  # 1 GiB: Orin Nano has 8 GB shared between CPU and GPU


def convert(work, candidate, out_path: Path) -> ConvertResult:
    import onnx
    import onnx_ir as ir
    import onnxscript.optimizer

    model = ir.load(str(work.onnx_path))
    onnxscript.optimizer.optimize(model)  # constant folding + dead code: TensorRT parses less
    proto = ir.to_proto(model)
    profile = optimization_profile(work.info)
    dynamic = [f"{i.name}[{d}]" for i in proto.graph.input for d, dim in enumerate(i.type.tensor_type.shape.dim)
               if not dim.dim_value and i.name not in profile]
    if dynamic:
        raise ValueError(f"TensorRT-ready ONNX: dims {dynamic} are symbolic but not among the model's dynamic dims "
                         "(no bounds for an optimization profile)")
    if candidate.precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        proto = convert_float_to_float16(proto, keep_io_types=True)
        # The converter appends its input casts after the nodes that use them: sort the graph again.
        model = ir.from_proto(proto)
        model.graph.sort()
        proto = ir.to_proto(model)
    elif candidate.precision == "int8":
        raise ValueError("TensorRT INT8 takes explicit Q/DQ ONNX; the jetson profile builds FP16")
    onnx.checker.check_model(proto)
    tmp = out_path.with_name(out_path.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(out_path)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    engine = out_path.with_suffix(".engine").name
    return ConvertResult(
        {"name": "tensorrt", "opset": opset, "precision": candidate.precision, "workspace_bytes": WORKSPACE_BYTES,
         **({"profile": profile} if profile else {})},
        runs_on={"arch": None, "gpu": "cuda", "runtime": "tensorrt"},
        host_check=host_check(work, out_path),
        deferred={"step": "tensorrt-engine", "engine": engine, "command": BUILD_COMMAND,
                  "why": "a TensorRT engine is specific to the GPU and TensorRT version that build it; "
                         "it is built on the device", **({"profile": profile} if profile else {})})


def optimization_profile(info: dict) -> dict[str, dict[str, list[int]]]:
    """{input: {"min", "opt", "max": shape}} for the inputs with dynamic dims (model.dynamic's bounds;
    opt is the example's shape, which is what the profile's kernels are timed at); {} when static."""
    profile: dict[str, dict[str, list[int]]] = {}
    for t in info["inputs"]:
        ranges = {a: (lo, hi) for a, _, lo, hi in t.get("dynamic") or ()}
        if ranges:
            profile[t["name"]] = {"min": [ranges[i][0] if i in ranges else s for i, s in enumerate(t["shape"])],
                                  "opt": list(t["shape"]),
                                  "max": [ranges[i][1] if i in ranges else s for i, s in enumerate(t["shape"])]}
    return profile


def host_check(work, onnx_path: Path) -> dict:
    """The TensorRT-ready ONNX on ONNX Runtime's CPU kernels vs the reference (held-out data)."""
    import onnxruntime as ort

    from edgekit.verify import per_output

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    inputs, refs, _ = work.samples("verify")
    got = [dict(zip(names, sess.run(names, s))) for s in inputs]
    classifier = work.info["task"] == "classification"
    from edgekit.samples import load_samples

    shapes = []
    for sp in work.info.get("verify_shapes") or []:  # dynamic dims: the profile's other shapes too
        s_in, s_ref, _ = load_samples(work.dir / sp["file"])
        s_got = [dict(zip(names, sess.run(names, x))) for x in s_in]
        shapes.append({"label": sp["label"], "samples": len(s_in), "metrics": per_output(s_ref, s_got, list(s_ref[0]), classifier)})
    return {"runtime": f"onnxruntime {ort.__version__} CPU",
            "metrics": per_output(refs, got, list(refs[0]), classifier), **({"shapes": shapes} if shapes else {})}


def build_engine(onnx_path: str, engine_path: str, timing_cache: str | None = None,
                 workspace_bytes: int = WORKSPACE_BYTES, profile: dict | None = None) -> dict:
    """TensorRT builder on this machine's GPU: parse the ONNX, build a serialized engine, keep the
    timing cache (builds after the first reuse it). Runs in a child process (edgekit.isolate).
    profile: {input: {"min", "opt", "max": shape}} for dynamic dims (optimization_profile)."""
    import time

    from edgekit import deps

    trt = deps.require("tensorrt", "building TensorRT engines")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly is not None:  # TensorRT 10: opt in; TensorRT 11: always strongly typed
        flags |= 1 << int(strongly)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError("TensorRT's ONNX parser refused the model: " + "; ".join(errors[:5]))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if profile:  # one optimization profile covering every dynamic input's bounds
        p = builder.create_optimization_profile()
        for name, s in profile.items():
            p.set_shape(name, min=tuple(s["min"]), opt=tuple(s["opt"]), max=tuple(s["max"]))
        config.add_optimization_profile(p)
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).exists() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT could not build an engine (see the builder's log above)")
    tmp = Path(engine_path + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(engine_path)
    if timing_cache:
        Path(timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"tensorrt": trt.__version__, "build_s": round(time.perf_counter() - t0, 1),
            "engine_bytes": Path(engine_path).stat().st_size, "network_flags": flags,
            **({"profile": profile} if profile else {})}


def preflight(ctx) -> dict:
    """TensorRT's parser is not here to ask; the device build decides (and reports the op)."""
    if ctx.onnx_error:
        return ctx.failed_before("ONNX export (torch.onnx.export, dynamo)", ctx.onnx_error)
    return {"status": "unknown", "unsupported": [], "not_accelerated": [], "table": "",
            "error": "TensorRT is checked on the device (its ONNX parser runs when the engine is built)"}


# The host half of TensorRT: a TensorRT-ready ONNX; the engine is built on the device (edgekit build).
CONVERTER = Converter(name="tensorrt", format="onnx", suffix=".onnx", toolchains=("onnx", "onnxscript", "onnxruntime"),
                      convert=convert, preflight=preflight, needs_onnx=True, shape_support="dynamic")
