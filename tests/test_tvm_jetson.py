"""Apache TVM (this CPU, aarch64, CUDA sm_87) and the jetson target, TensorRT deferred to the device.

TVM's llvm module runs here on the real TVM runtime. The aarch64 and CUDA modules cannot run on
an x86 host without a GPU: what is checked is what a reviewer would check by hand (ELF machine,
TVM's entry point, the cubin's SM number from its own header). TensorRT needs an NVIDIA GPU: its
tests skip with that reason, and the TensorRT-ready ONNX is checked on ONNX Runtime.
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import pytest

from conftest import digits_for, edgekit as run, needs

pytestmark = [needs("tvm", "aarch64-g++", "nvcc"), pytest.mark.tvm]


def _manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _arts(bundle) -> dict:
    return {a["id"]: a for a in _manifest(bundle)["artifacts"]}


@pytest.fixture(scope="session")
def digits_jetson():
    return digits_for("jetson")  # checks exit 0: deferred/on-device artifacts are not a failure


@pytest.mark.slow
def test_cpu_tvm_module_verified_on_the_tvm_runtime():
    out, p = digits_for("cpu-tvm")  # compiled with --bench (conftest.DIGITS_EXTRA)
    tvm = _arts(out)["tvm-fp32"]
    assert tvm["role"] == "primary" and tvm["verification"]["status"] == "passed"
    m = tvm["verification"]["metrics"]["logits"]
    assert m["cosine"] >= 0.9999 and m["top1_agreement"] >= 0.99 and tvm["verification"]["samples"] >= 300
    assert tvm["converter"]["target"].find("llvm") >= 0 and "mcpu" in tvm["converter"]["target"]
    assert "tvm-fp32" in p.stdout and "measured on target" in p.stdout
    # `verify` reloads the module from the bundle on the TVM runtime and re-runs the self-test
    v = run("verify", out, check=True)
    assert "tvm-fp32" in v.stdout and "passed" in v.stdout


@pytest.mark.slow
def test_jetson_bundle_holds_device_artifacts_checked_here(digits_jetson):
    from edgekit.converters.tvm import cubin_sm, elf_header

    out, p = digits_jetson
    arts = _arts(out)
    # verified here: the portable ONNX for ONNX Runtime's aarch64 wheel is the primary until the device speaks
    assert arts["onnxruntime-fp32-plain"]["role"] == "primary"
    assert arts["onnxruntime-fp32-plain"]["verification"]["status"] == "passed"
    # TensorRT: a prepared FP16 ONNX, never a fake engine; its numerics checked on ONNX Runtime
    trt = arts["tensorrt-fp16"]
    assert trt["role"] == "on-device" and trt["verification"]["status"] == "not-run"
    assert trt["format"] == "onnx" and trt["path"].endswith(".onnx") and not list(out.glob("artifacts/*.engine"))
    assert trt["converter"]["deferred"]["command"].startswith("python -m edgekit build")
    assert "edgekit build" in trt["verification"]["reason"]
    assert trt["converter"]["host_check"]["metrics"]["logits"]["cosine"] >= 0.999
    assert trt["size_bytes"] < 0.6 * arts["onnxruntime-fp32-plain"]["size_bytes"]  # float16 weights
    import onnx

    fp16_inits = [i for i in onnx.load(out / trt["path"]).graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert fp16_inits, "the TensorRT-ready ONNX carries no float16 weights"
    # TVM aarch64: an aarch64 shared object (read independently of the converter's own check)
    a64 = arts["tvm-fp32-aarch64"]
    head = (out / a64["path"]).read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and struct.unpack("<H", head[18:20])[0] == 183  # EM_AARCH64
    assert a64["converter"]["artifact_checks"]["passed"] and a64["role"] == "on-device"
    # TVM CUDA: aarch64 host code + kernels compiled for sm_87 by nvcc, shipped as a cubin
    cuda = arts["tvm-fp32-cuda-sm87"]
    assert elf_header(out / cuda["path"])["machine"] == "aarch64"
    cubin = out / "artifacts" / cuda["converter"]["cuda"]["cubin"]
    assert cubin_sm(cubin) == 87 and cuda["converter"]["cuda"]["kernels"] >= 5
    assert "run on the device" in p.stderr and "edgekit build" in p.stderr


@pytest.mark.slow
def test_build_on_a_machine_that_is_not_the_device_refuses_and_changes_nothing(digits_jetson):
    out, _ = digits_jetson
    before = (out / "manifest.json").read_bytes()
    p = run("build", out)
    assert p.returncode == 2
    assert "nothing in" in p.stderr and "tensorrt" in p.stderr and "aarch64" in p.stderr
    assert (out / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_build_verifies_on_device_artifacts_and_reranks(digits_jetson, tmp_path):
    """The device half on a machine that can run one of the artifacts: mark the ONNX Runtime one
    as built elsewhere (on-device, not-run), then `build` runs it on ONNX Runtime in a child
    process over the self-test vectors and rewrites the manifest with it verified."""
    from edgekit.bundle import open_bundle

    src, _ = digits_jetson
    out = tmp_path / "bundle"
    shutil.copytree(src, out)
    m = _manifest(out)
    for a in m["artifacts"]:
        if a["id"] == "onnxruntime-fp32-plain":
            a["role"], a["verification"]["status"], a["verification"]["metrics"] = "on-device", "not-run", {}
            a["converter"]["runs_on"] = {"arch": None, "gpu": None, "runtime": "onnxruntime"}
    (out / "manifest.json").write_text(json.dumps(m))
    p = run("build", out)
    assert p.returncode == 0, p.stderr
    arts = {a.id: a for a in open_bundle(out).artifacts}
    ort = arts["onnxruntime-fp32-plain"]
    assert ort.role == "primary" and ort.verification.status == "passed" and ort.verification.where == "device"
    assert ort.verification.metrics["logits"]["cosine"] >= 0.9999
    assert arts["tensorrt-fp16"].role == "on-device"  # this machine cannot build it: left as it was
    assert "skipped" in p.stdout and "needs tensorrt" in p.stdout


@pytest.mark.slow
def test_choosing_a_primary_by_device_timings_leaves_on_device_artifacts_waiting(digits_jetson, tmp_path):
    """`bench --device ... --choose-primary` ranks what was timed; artifacts still waiting for
    `edgekit build` must not turn into fallbacks on the way."""
    from edgekit.bundle import open_bundle
    from edgekit.primary import choose_primary

    src, _ = digits_jetson
    out = tmp_path / "bundle"
    shutil.copytree(src, out)
    timed = [{"artifact": "onnxruntime-fp32-plain", "latency_ms": {"p50": 0.02}, "measured_on": "device ssh://jetson",
              "threads": 1}]
    choose_primary(out, open_bundle(out), timed)
    roles = {a.id: a.role for a in open_bundle(out).artifacts}
    assert roles["onnxruntime-fp32-plain"] == "primary"
    assert [roles[i] for i in ("tensorrt-fp16", "tvm-fp32-cuda-sm87", "tvm-fp32-aarch64")] == ["on-device"] * 3


@pytest.mark.slow
def test_minilm_l3_tvm_modules_and_tensorrt_onnx_for_jetson(build_dir):
    """The issue's command on a real transformer: every device artifact present and checked. MiniLM's
    3-layer student (its layers 0, 4, 5; the same tokenizer, embeddings and ops): half the TVM build
    time of the 6-layer model in CI, which compiles that one for cpu."""
    out = build_dir / "minilm-l3-jetson"
    p = run("compile", "--model", "builtin:minilm-l3", "--target", "jetson", "--out", out)
    assert p.returncode == 0, p.stderr
    arts = _arts(out)
    assert arts["onnxruntime-fp32-plain"]["verification"]["metrics"]["embedding"]["cosine"] >= 0.9999
    assert arts["tensorrt-fp16"]["converter"]["host_check"]["metrics"]["embedding"]["cosine"] >= 0.999
    assert arts["tvm-fp32-cuda-sm87"]["converter"]["cuda"]["cubin_sm"] == 87
    assert all(arts[i]["converter"]["artifact_checks"]["passed"] for i in ("tvm-fp32-aarch64", "tvm-fp32-cuda-sm87"))


def test_library_checks_refuse_the_wrong_machine_and_non_elf(tmp_path):
    from edgekit.converters.tvm import check_library

    x86 = tmp_path / "host.so"
    shutil.copyfile(sys.executable, x86)  # an x86-64 ELF, not a shared object, no TVM entry point
    res = check_library(x86, "aarch64")
    assert not res["passed"]
    assert any("x86_64" in f for f in res["failures"]) and any("__tvm_ffi__library_bin" in f for f in res["failures"])
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not an elf at all")
    assert "not an ELF file" in check_library(junk, "aarch64")["failures"]


def test_missing_cross_compiler_names_the_install_command(tmp_path):
    """With no aarch64 linker on PATH the TVM device candidates say exactly what to install."""
    empty = tmp_path / "bin"
    empty.mkdir()
    p = run("check", "--target", "jetson", env={"PATH": str(empty)})
    assert "not installed: aarch64-g++" in p.stdout + p.stderr
    assert "apt-get install g++-aarch64-linux-gnu" in p.stdout + p.stderr


def test_targets_and_doctor_say_what_runs_on_the_device():
    t = run("targets", check=True).stdout
    assert "jetson" in t and "cpu-tvm" in t and "tensorrt step runs on the device (edgekit build)" in t
    d = run("doctor", check=True).stdout
    assert "tensorrt" in d and ("not here (device only)" in d or "python3-libnvinfer" not in d)
    assert "aarch64-g++" in d and "nvcc" in d


def test_pip_check_reports_only_the_known_typing_extensions_pin():
    """TVM and litert-torch share one environment; the one declared conflict is understood (see
    scripts/setup-env.sh) and any new one fails here."""
    p = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    unknown = [ln for ln in lines if not ln.startswith("xdsl 0.28.0 has requirement typing-extensions<4.13")]
    assert not unknown, lines


def _has_gpu_and_tensorrt() -> str | None:
    from edgekit import deps

    if not deps.available("tensorrt"):
        return "TensorRT is not installed (" + deps.TOOLCHAINS["tensorrt"].install + ")"
    from edgekit.offhost import has_nvidia_gpu

    if not has_nvidia_gpu():
        return "no NVIDIA GPU on this machine: TensorRT cannot build or run engines"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_has_gpu_and_tensorrt() is not None, reason=str(_has_gpu_and_tensorrt()))
@pytest.mark.tensorrt
def test_tensorrt_engine_built_and_verified_on_this_gpu(digits_jetson, tmp_path):
    """Where TensorRT and a GPU exist: `build` makes the engine from the prepared ONNX, runs it with
    the TensorRT runner over the self-test vectors, and makes it the primary."""
    src, _ = digits_jetson
    out = tmp_path / "bundle"
    shutil.copytree(src, out)
    p = run("build", out, timeout=1800)
    assert p.returncode in (0, 12), p.stderr
    trt = _arts(out)["tensorrt-fp16"]
    assert trt["format"] == "tensorrt-engine" and (out / trt["path"]).exists()
    assert trt["verification"]["status"] == "passed" and trt["role"] == "primary"
