"""Pre-flight op check and actionable conversion failures, on a gallery of awkward models
(tests/gallery/awkward.py) run through the real toolchains.

Every message must name the operator and the user's own source line (found here by the
AWKWARD-LINE marker, so editing the gallery cannot make the tests lie), and no bare toolchain
traceback may reach the terminal.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import MOBILE, edgekit, needs

GALLERY = Path(__file__).parent / "gallery" / "awkward.py"


def line_of(marker: str) -> str:
    """'awkward.py:N' of the gallery line carrying `# AWKWARD-LINE marker`."""
    for i, text in enumerate(GALLERY.read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# AWKWARD-LINE {marker}"):
            return f"awkward.py:{i}"
    raise AssertionError(f"no AWKWARD-LINE {marker} in {GALLERY}")


def model(name: str) -> str:
    return f"{GALLERY}:{name}"


def no_traceback(p) -> None:
    assert "Traceback (most recent call last)" not in p.stderr + p.stdout, p.stderr[-3000:]


def check(tmp_path, name: str, target: str):
    out = tmp_path / f"check-{name}-{target}.json"
    p = edgekit("check", "--model", model(name), "--target", target, "--json", out)
    no_traceback(p)
    return p, (json.loads(out.read_text()) if out.exists() else None)


def findings(report: dict, converter: str) -> list[dict]:
    return report["verdicts"][converter]["unsupported"]


def at(f: dict) -> str:
    return f"{Path(f['source']['file']).name}:{f['source']['line']}"


@needs(*MOBILE)
def test_check_op_a_target_lacks(tmp_path):
    """torch.bucketize: litert-torch has no lowering, ExecuTorch's edge dialect refuses it (not core
    ATen); the lite interpreter runs it. Predicted from the toolchains' tables, nothing converted."""
    p, rep = check(tmp_path, "bucketize", "android")
    assert p.returncode == 12, p.stderr  # some candidates can convert, some cannot
    for conv in ("litert", "executorch"):
        f = findings(rep, conv)[0]
        assert f["op"] == "aten.bucketize.Tensor" and at(f) == line_of("bucketize"), f
    assert "no lowering for aten.bucketize.Tensor" in findings(rep, "litert")[0]["why"]
    assert "not in Core ATen opset" in findings(rep, "executorch")[0]["why"]
    assert rep["verdicts"]["torchscript"]["status"] == "ok"
    assert rep["op_counts"]["aten.bucketize.Tensor"] == 1 and rep["op_counts"]["aten.linear.default"] == 1
    assert "[FAIL] litert-int8" in p.stdout and line_of("bucketize") in p.stdout


@needs(*MOBILE)
def test_check_dynamic_shape(tmp_path):
    """torch.nonzero: the output size depends on the data; LiteRT needs static shapes (predicted from
    the export's unbacked size symbol); ONNX Runtime runs NonZero."""
    p, rep = check(tmp_path, "nonzero", "rpi")
    assert p.returncode == 12, p.stderr
    (f,) = findings(rep, "litert")  # only the op where the dynamic size starts, not everything after it
    assert f["op"] == "aten.nonzero.default" and at(f) == line_of("nonzero") and "static shapes" in f["why"]
    assert rep["verdicts"]["onnx-ort"]["status"] == "ok"
    assert "use a mask" in p.stdout  # the known rewrite


def test_check_data_dependent_branch(tmp_path):
    """A Python `if` on a tensor: torch.export (so ONNX) cannot capture it; a trace converts but keeps
    one branch, a risk that verification on held-out data decides. Both name the line."""
    p, rep = check(tmp_path, "branch", "cpu")
    assert p.returncode == 12, p.stderr
    assert rep["export_error"]["kind"] == "data-dependent-control-flow"
    assert at(rep["export_error"]) == line_of("branch")
    assert at(findings(rep, "onnx-ort")[0]) == line_of("branch")
    ts = rep["verdicts"]["torchscript"]
    assert ts["status"] == "risky" and at(ts["risks"][0]) == line_of("branch")
    assert "records only the branch" in ts["risks"][0]["why"]
    assert "[RISK] torchscript-lite-fp32" in p.stdout and "torch.where" in p.stdout  # the rewrite


def test_check_unusual_dtype(tmp_path):
    """bfloat16: ONNX Runtime's CPU kernel registry has no bfloat16 Gemm (the classic 'Could not find
    an implementation' at session creation), predicted with the op, the dtype and the line."""
    p, rep = check(tmp_path, "bfloat16", "cpu")
    assert p.returncode == 12, p.stderr
    f = findings(rep, "onnx-ort")[0]
    assert f["op"].startswith("Gemm") and "not bfloat16" in f["why"] and at(f) == line_of("bfloat16")
    assert rep["verdicts"]["torchscript"]["status"] == "ok"


def test_check_onnx_source_with_function_ops(tmp_path):
    """An ONNX source: HardSwish is an ONNX *function* (ORT has no kernel of its own for it and runs
    its expansion), so ONNX Runtime is ok; converters that need a PyTorch model say so."""
    import onnx_ir as ir
    import torch

    class HardSwish(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.hardswish(x * 2.0)

    path = tmp_path / "hardswish.onnx"
    torch.onnx.export(HardSwish(), (torch.randn(1, 8),), str(path), dynamo=True, external_data=False)
    assert "HardSwish" in {n.op_type for n in ir.load(str(path)).graph}
    p = edgekit("check", "--model", path, "--target", "cpu")
    assert p.returncode == 12 and "[ok  ] onnxruntime-fp32" in p.stdout, p.stdout + p.stderr
    assert "takes a PyTorch model" in p.stdout  # the TorchScript candidate
    no_traceback(p)


@needs(*MOBILE)  # cpu checks its on-request ExecuTorch and LiteRT candidates too
def test_check_default_model_has_no_false_alarm():
    # 9: the three default candidates and the on-request ones (ONNX Runtime INT8 and FP16, ExecuTorch and
    # LiteRT FP32 and INT8)
    p = edgekit("check", "--target", "cpu")  # the default model (digits CNN)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("[ok  ]") == 9 and "FAIL" not in p.stdout, p.stdout


@needs(*MOBILE)
def test_check_shows_executorch_delegation_before_converting():
    p = edgekit("check", "--target", "android")
    assert p.returncode == 0 and "FAIL" not in p.stdout, p.stdout + p.stderr
    # digits: XNNPACK's own partitioner takes every op (as the real lowering does: the manifest agrees),
    # for each ExecuTorch candidate (INT8, FP32, and FP16 on request)
    assert p.stdout.count("100% of ops, 100% of FLOPs on XNNPACK") == 3, p.stdout


# --- compile: the same findings, the op and the line in every failure -------------------------

def compile_(tmp_path, name, target, *extra):
    out = tmp_path / f"{name}-{target}"
    p = edgekit("compile", "--model", model(name), "--target", target, "--out", out, *extra)
    no_traceback(p)
    man = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
    return p, man, out


@needs(*MOBILE)
@pytest.mark.onnxruntime
def test_compile_skips_what_the_check_refuses(tmp_path):
    p, man, _ = compile_(tmp_path, "bucketize", "rpi")
    assert p.returncode == 12, p.stderr  # degraded: the ONNX fallback is the primary
    failed = {f["id"]: f for f in man["failed_candidates"]}
    for cid in ("litert-int8", "litert-fp32"):
        assert failed[cid]["stage"] == "check"
        assert "aten.bucketize.Tensor" in failed[cid]["error"] and line_of("bucketize") in failed[cid]["error"]
        assert "--no-preflight" in failed[cid]["hint"]
    assert man["artifacts"][0]["id"] == "onnxruntime-fp32-plain" and man["artifacts"][0]["role"] == "primary"
    assert man["model"]["preflight"]["verdicts"]["litert"]["status"] == "fails"


@needs(*MOBILE)
@pytest.mark.onnxruntime
@pytest.mark.litert
def test_compile_names_op_and_line_when_the_toolchain_fails(tmp_path):
    """--no-preflight: litert-torch really runs and fails deep inside (a JAX concretization error).
    The message still names the stage, the toolchain, the op and the user's line; the raw traceback
    is in the log file the message names."""
    p, man, out = compile_(tmp_path, "nonzero", "rpi", "--no-preflight")
    assert p.returncode == 12, p.stderr
    f = next(f for f in man["failed_candidates"] if f["id"] == "litert-fp32")
    assert f["stage"] == "convert/verify"
    for part in ("convert with litert-torch", "aten.nonzero.default", line_of("nonzero")):
        assert part in f["error"], (part, f["error"])
    assert "use a mask" in f["hint"]
    log = Path(f["error"].split("(log: ")[1].rstrip(")"))
    assert log.parent == out / "logs" and "Traceback (most recent call last)" in log.read_text()
    assert line_of("nonzero") in p.stderr


@pytest.mark.torchscript_lite
def test_compile_of_a_traced_branch_fails_verification_and_names_the_line(tmp_path):
    """ONNX export fails at the `if`; the trace converts but computes the example's branch for every
    input, so held-out inputs that take the other branch fail verification (exit 7), and the reason
    points back at the line the check flagged."""
    p, man, out = compile_(tmp_path, "branch", "cpu")
    assert p.returncode == 7, p.stderr
    (ts,) = man["artifacts"]
    assert ts["role"] == "rejected" and "pre-flight: data-dependent branch at" in ts["verification"]["reason"]
    assert line_of("branch") in ts["verification"]["reason"]
    assert p.stderr.count("edgekit: error: no artifact passed verification") == 1 and line_of("branch") in p.stderr


def test_verification_is_not_blind_to_scale():
    """Cosine similarity cannot see an artifact whose outputs are all 2x the reference; SNR can."""
    import numpy as np

    from edgekit.profiles import DEFAULT_TOLERANCES
    from edgekit.verify import judge, output_metrics

    ref = np.random.default_rng(0).standard_normal((16, 10)).astype(np.float32)
    m = output_metrics(ref, 2 * ref, classifier=True)
    assert m["cosine"] > 0.99999 and m["top1_agreement"] == 1.0  # what cosine and top-1 see
    assert any("SNR" in f for f in judge({"logits": m}, DEFAULT_TOLERANCES["fp32"]))
    assert judge({"logits": output_metrics(ref, ref * (1 + 1e-6), True)}, DEFAULT_TOLERANCES["fp32"]) == []


@pytest.mark.torchscript_lite
def test_compile_falls_back_past_an_unusual_dtype(tmp_path):
    p, man, _ = compile_(tmp_path, "bfloat16", "cpu")
    assert p.returncode == 12, p.stderr
    assert [a["id"] for a in man["artifacts"]] == ["torchscript-lite-fp32"]
    assert man["artifacts"][0]["verification"]["status"] == "passed"
    assert all("bfloat16" in f["error"] and line_of("bfloat16") in f["error"] for f in man["failed_candidates"])


@needs(*MOBILE)
@pytest.mark.litert
@pytest.mark.onnxruntime
def test_delegation_share_below_the_profile_minimum_fails_verification(tmp_path):
    """A Conv3d becomes LiteRT's CONV_3D, which XNNPACK does not take: 0% of the FLOPs delegated, below
    the rpi profile's 90%, so the LiteRT artifacts are rejected with that reason, not shipped slow."""
    p, man, _ = compile_(tmp_path, "conv3d", "rpi")
    assert p.returncode == 12, p.stderr
    arts = {a["id"]: a for a in man["artifacts"]}
    lit = arts["litert-fp32"]
    cov = lit["converter"]["delegation"]
    assert cov["flops_share"] == 0.0 and cov["not_delegated"] == {"CONV_3D": 1} and cov["flops_total"] > 0
    assert lit["role"] == "rejected" and "of FLOPs run on xnnpack" in lit["verification"]["reason"]
    assert lit["verification"]["metrics"]["output"]["cosine"] > 0.9999  # numerically fine: rejected for speed
    assert arts["onnxruntime-fp32-plain"]["role"] == "primary"
    assert man["target"]["min_delegated_flops_share"] == 0.9
    # and PT2E quantizes nothing in a Conv3d model: no "INT8" artifact that is FP32 inside
    f = next(f for f in man["failed_candidates"] if f["id"] == "litert-int8")
    assert "FP32 under an INT8 label" in f["error"] and "conv3d" in f["error"]


def test_rewrites_list_is_dated_and_its_advice_is_right():
    """The one hand-kept list: dated, and the cumsum rewrite it gives computes the same thing."""
    import torch

    from edgekit import rewrites

    assert "last checked 20" in rewrites.__doc__
    x = torch.randn(3, 7)
    n = x.shape[-1]
    assert torch.allclose(x @ torch.triu(torch.ones(n, n)), torch.cumsum(x, dim=-1), atol=1e-5)
    assert "torch.triu" in rewrites.suggest("aten.cumsum.default", "")
