"""The ios target: Core ML ML Programs checked here, ExecuTorch verified here, Core ML run on a Mac.

One real compile (builtin:digits, through the CLI) serves the end-to-end tests. This host is not a
Mac: Core ML predictions need macOS (coremltools' libcoremlpython), so the Core ML packages are
checked without running them (spec I/O, weight types read from the ML Program, spec version and
opset, ops in coremltools' MIL registry) and their verification is "not-run" until `edgekit build`
on a Mac. Each of those checks is shown failing on a deliberately mismatched package.
"""
from __future__ import annotations

import json
import platform
import shutil

import pytest

from conftest import digits_for, edgekit as run, needs

pytestmark = [needs("coremltools", "executorch"), pytest.mark.coreml, pytest.mark.executorch]
ON_MAC = platform.system() == "Darwin"


def _manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _arts(bundle) -> dict:
    return {a["id"]: a for a in _manifest(bundle)["artifacts"]}


@pytest.fixture(scope="session")
def digits_ios():
    return digits_for("ios")  # checks exit 0: Core ML waiting for a Mac is not a failure


def _mil_consts(package) -> dict:
    """name -> MIL data type of every constant tensor in the package, read from its protobuf spec
    (independently of the converter's own check)."""
    from coremltools.models.utils import load_spec
    from coremltools.proto import MIL_pb2

    spec = load_spec(str(package))
    fn = spec.mlProgram.functions["main"]
    types = {}
    for op in fn.block_specializations[fn.opset].operations:
        for key, value in op.attributes.items():
            if value.type.HasField("tensorType") and (op.type == "const" or key == "quantized_data"):
                types[f"{op.outputs[0].name}:{key}"] = MIL_pb2.DataType.Name(value.type.tensorType.dataType)
    return types


@pytest.mark.slow
@pytest.mark.skipif(ON_MAC, reason="on a Mac the Core ML packages are verified by running them")
def test_core_ml_packages_checked_here_executorch_fallback_verified(digits_ios):
    from edgekit.bundle import sha256_file, size_bytes

    out, p = digits_ios
    arts = _arts(out)
    assert list(arts) == ["executorch-fp32", "coreml-fp16", "coreml-int8"]  # usable first
    et = arts["executorch-fp32"]
    assert et["role"] == "primary" and et["verification"]["status"] == "passed"
    assert et["verification"]["where"] == "host-runtime" and et["verification"]["samples"] == 397
    m = et["verification"]["metrics"]["logits"]
    assert m["cosine"] >= 0.9999 and m["top1_agreement"] >= 0.99
    cm = arts["coreml-fp16"]
    v = cm["verification"]
    assert cm["role"] == "on-device" and v["status"] == "not-run" and v["failures"] == []
    assert "macOS" in v["reason"] and "edgekit build" in v["reason"]
    conv = cm["converter"]
    assert conv["runs_on"] == {"os": "Darwin", "runtime": "coremltools"}
    assert (conv["name"], conv["tool"]) == ("coreml", "coremltools")  # its CONVERTERS row, and the tool that built it
    assert conv["version"] and conv["minimum_deployment_target"] == "iOS16"
    assert conv["compute_units"] == "ALL" and conv["compute_precision"] == "float16" and conv["weights"] == "float16"
    checks = conv["artifact_checks"]
    assert checks["failures"] == []
    passed = " | ".join(checks["passed"])
    for what in ("reloads with coremltools", "inputs as the model's: image FLOAT32[1, 1, 8, 8]",
                 "outputs as the model's: logits FLOAT32[1, 10]", "weights fp16", "specificationVersion 7 <= iOS16",
                 "op types"):
        assert what in passed, (what, checks["passed"])
    # The two conv/linear weights above 2048 elements (32x16x3x3 and 64x512) are float16.
    assert checks["weights"] == {"FLOAT16": {"tensors": 2, "elements": 32 * 16 * 9 + 64 * 512}}
    assert checks["spec_version"] == 7 and checks["opset"] == "CoreML6" and checks["ops"]["conv"] == 2
    # The artifact is the package folder; the manifest's hash and size cover every file inside.
    pkg = out / cm["path"]
    assert cm["format"] == "mlpackage" and pkg.is_dir() and (pkg / "Manifest.json").is_file()
    assert cm["sha256"] == sha256_file(pkg) and cm["size_bytes"] == size_bytes(pkg)
    assert not list((out / "artifacts").glob(".*partial*"))  # the temporary package was renamed into place
    consts = _mil_consts(pkg)
    assert consts["p_2_weight_to_fp16:val"] == "FLOAT16" and consts["p_6_weight_to_fp16:val"] == "FLOAT16"
    assert "run on the device" in p.stderr and "edgekit build" in p.stderr
    choice = _manifest(out)["target"]["primary_choice"]
    assert choice["preferred"] == "coreml-fp16" and choice["degraded"] is False
    assert choice["on_device"] == ["coreml-fp16", "coreml-int8"]


@pytest.mark.slow
def test_int8_package_has_int8_weights_and_is_smaller(digits_ios):
    out, _ = digits_ios
    arts = _arts(out)
    fp16, int8 = arts["coreml-fp16"], arts["coreml-int8"]
    checks = int8["converter"]["artifact_checks"]
    assert checks["failures"] == [] and any("weights int8" in s for s in checks["passed"])
    assert checks["weights"] == {"INT8": {"tensors": 2, "elements": 32 * 16 * 9 + 64 * 512}}
    assert checks["ops"]["constexpr_affine_dequantize"] == 2  # dequantized for fp16 arithmetic (iOS16 op)
    q = int8["converter"]["quantization"]
    assert q["mode"] == "linear_symmetric" and q["weight_threshold"] == 2048
    consts = _mil_consts(out / int8["path"])
    assert [k for k, t in consts.items() if k.endswith(":quantized_data") and t == "INT8"], consts
    # 37 kB of fp16 weights become 19 kB of int8 (the small conv1/fc2 layers stay fp16)
    assert int8["size_bytes"] < 0.6 * fp16["size_bytes"], (int8["size_bytes"], fp16["size_bytes"])


@pytest.mark.slow
def test_each_package_check_can_fail(digits_ios, tmp_path):
    """The same checks on the fp16 package, asked for what it is not: every kind of finding fires."""
    from edgekit.converters.coreml import check_package

    out, _ = digits_ios
    m = _manifest(out)
    pkg = out / _arts(out)["coreml-fp16"]["path"]
    ins, outs = m["model"]["inputs"], m["model"]["outputs"]
    assert check_package(pkg, ins, outs, "fp16", "iOS16")["failures"] == []
    fails = check_package(pkg, ins, outs, "fp32", "iOS16")["failures"]
    assert fails == ["weights: fp32 asks for FLOAT32 weight tensors, but the package stores 2 tensor(s) "
                     "(37376 elements) as FLOAT16 (tensors > 2048 elements)"]
    fails = check_package(pkg, ins, outs, "int8", "iOS16")["failures"]
    assert len(fails) == 1 and "INT8/UINT8" in fails[0] and "FLOAT16" in fails[0]
    old = check_package(pkg, ins, outs, "fp16", "iOS15")["failures"]
    assert "specificationVersion 7 is newer than iOS15's (6): devices on iOS15 cannot load it" in old
    assert "function main: opset CoreML6 is newer than iOS15's (CoreML5)" in old
    wrong_io = check_package(pkg, [{**ins[0], "shape": [1, 1, 28, 28]}], [{**outs[0], "dtype": "float16"}], "fp16",
                             "iOS16")["failures"]
    assert wrong_io == ["input image: the package has FLOAT32[1, 1, 8, 8], expected FLOAT32[1, 1, 28, 28]",
                        "output logits: the package has FLOAT32[1, 10], expected FLOAT16[1, 10]"]
    named = check_package(pkg, [{**ins[0], "name": "pixels"}], outs, "fp16", "iOS16")["failures"]
    assert named == ["inputs: the package has ['image'], expected ['pixels']"]
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(pkg, broken)
    (broken / "Manifest.json").unlink()
    fails = check_package(broken, ins, outs, "fp16", "iOS16")["failures"]
    assert len(fails) == 1 and fails[0].startswith("the package does not reload with coremltools")


def test_op_registry_checks_can_fail_on_a_package_for_a_newer_ios(tmp_path):
    """An iOS18 INT8 program stores its weights with constexpr_blockwise_shift_scale, an op the
    iOS16 opset does not have: checked against iOS16, the spec version, the opset and the op are
    all named; against iOS18 the same package passes (int8 weights found in the iOS18 layout)."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    import numpy as np
    import torch

    from edgekit.converters.coreml import check_package

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    ep = torch.export.export(model, (torch.randn(1, 64),)).run_decompositions({})
    ml = ct.convert(ep, convert_to="mlprogram", inputs=[ct.TensorType(name="x", shape=(1, 64), dtype=np.float32)],
                    outputs=[ct.TensorType(name="y", dtype=np.float32)], minimum_deployment_target=ct.target.iOS18)
    ml = cto.linear_quantize_weights(ml, cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric")))
    pkg = tmp_path / "ios18.mlpackage"
    ml.save(str(pkg))
    ins = [{"name": "x", "shape": [1, 64], "dtype": "float32"}]
    outs = [{"name": "y", "shape": [1, 8], "dtype": "float32"}]
    res = check_package(pkg, ins, outs, "int8", "iOS18")
    assert res["failures"] == [] and res["weights"] == {"INT8": {"tensors": 1, "elements": 4096}}
    fails = check_package(pkg, ins, outs, "int8", "iOS16")["failures"]
    assert fails == ["specificationVersion 9 is newer than iOS16's (7): devices on iOS16 cannot load it",
                     "function main: opset CoreML8 is newer than iOS16's (CoreML6)",
                     "op constexpr_blockwise_shift_scale (x1) is not in the iOS16 opset (CoreML6); it starts at iOS18"]


@pytest.mark.slow
@pytest.mark.skipif(ON_MAC, reason="a Mac can run the Core ML packages: build verifies them there")
def test_build_here_skips_core_ml_needs_a_mac_and_changes_nothing(digits_ios):
    out, _ = digits_ios
    before = (out / "manifest.json").read_bytes()
    p = run("build", out)
    assert p.returncode == 2, p.stderr
    assert "nothing in" in p.stderr and "coreml-fp16: built for macOS" in p.stderr
    assert "coreml-int8: built for macOS" in p.stderr and "run this on the device" in p.stderr
    assert (out / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_verify_reruns_the_executorch_fallback_and_lists_core_ml_as_waiting(digits_ios):
    out, _ = digits_ios
    v = run("verify", out, check=True).stdout
    line = next(ln for ln in v.splitlines() if ln.startswith("executorch-fp32"))
    assert "passed" in line and "1.000000" in line
    assert any(ln.startswith("coreml-fp16") and "on-device" in ln for ln in v.splitlines())


@pytest.mark.slow
@pytest.mark.skipif(ON_MAC, reason="on macOS the runner loads the package")
def test_core_ml_runner_says_it_needs_macos(digits_ios):
    from edgekit.errors import ToolchainMissing
    from edgekit.runtimes import open_runner

    out, _ = digits_ios
    with pytest.raises(ToolchainMissing, match=r"Core ML predictions need macOS \(coremltools' libcoremlpython"):
        open_runner("coreml", out / _arts(out)["coreml-fp16"]["path"])


def test_w8a8_is_refused_with_the_reason():
    import importlib.util

    from edgekit.converters.coreml import _coreml_pt2e

    if importlib.util.find_spec("torch.ao.quantization.quantizer") is not None:
        pytest.skip("this PyTorch still has torch.ao.quantization.quantizer: CoreMLQuantizer may work")
    with pytest.raises(ValueError) as e:
        _coreml_pt2e()
    msg = str(e.value)
    assert "CoreMLQuantizer" in msg and "torch.ao.quantization.quantizer" in msg
    assert "linear_quantize_activations" in msg and "macOS" in msg and "coreml-int8" in msg


def test_preflight_reads_the_coreml_frontend_registry():
    """An op the frontend lacks is named with its source line; one PyTorch can decompose is decomposed."""
    import torch

    from edgekit.converters.coreml import preflight
    from edgekit.graphops import list_ops
    from edgekit.opcheck import OpContext

    class Digamma(torch.nn.Module):
        def forward(self, x):
            return torch.digamma(x) + x.new_ones(x.shape)

    ep = torch.export.export(Digamma(), (torch.rand(2, 3) + 1,))
    v = preflight(OpContext(exported=ep, ops=list_ops(ep.graph)))
    assert v["status"] == "fails" and [u["op"] for u in v["unsupported"]] == ["aten.digamma.default"]
    assert "no conversion for aten::digamma" in v["unsupported"][0]["why"]
    assert v["unsupported"][0]["source"]["code"].startswith("return torch.digamma(x)")
    assert v["decomposed"] == ["aten.new_ones.default"]  # new_ones -> full: the frontend has full
    assert "coremltools torch frontend op registry (447 ops" in v["table"]


def test_targets_lists_ios_with_the_core_ml_candidates():
    t = run("targets", check=True).stdout
    rows = [ln for ln in t.splitlines() if "coreml" in ln or ln.startswith("ios")]
    assert rows[0].startswith("ios") and "primary" in rows[0] and "fp16" in rows[0]
    assert any("--precision int8" in r for r in rows) and any("fallback 1" in r and "int8" in r for r in rows)
    assert any("executorch" in ln and "fallback 2" in ln for ln in t.splitlines())
