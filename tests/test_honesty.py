"""A "passed" must mean something (issue 23's honesty checks): the reference is checked before
anything is compared with it, and a precision label must match the file.

User models are written here as a user would (factory files in a temp folder); the compiles stop
at prepare where the reference is at fault, so they cost seconds."""
from __future__ import annotations

import json

import pytest

from conftest import edgekit
from edgekit.claims import RANDOM_DATA_CAVEAT, check_claims
from edgekit.manifest import Artifact, TensorSpec, Verification, assign_roles

pytestmark = [pytest.mark.onnxruntime]

MODELS = {
    "stateful": '''
import torch
class Counter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.register_buffer("calls", torch.zeros(1))
    def forward(self, x):
        self.calls += 1  # state kept between calls
        return self.lin(x) + self.calls
def make():
    return Counter().eval(), torch.randn(1, 4)
''',
    "raises": '''
import torch
class Picky(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
    def forward(self, x):
        return self.lin(x.reshape(1, 5))  # the example has 4 values: the model itself is broken
def make():
    return Picky().eval(), torch.randn(1, 4)
''',
    "nan_output": '''
import torch
class Log(torch.nn.Module):
    def forward(self, x):
        return torch.log(x - 100.0)  # NaN for every input near the example's range
def make():
    return Log().eval(), torch.randn(1, 4)
''',
}


@pytest.mark.parametrize("model, says", [
    ("stateful", "gave different outputs for the same input on two calls"),
    ("raises", "failed on the verification inputs"),
    ("nan_output", "gives NaN or Inf"),
])
def test_a_broken_reference_is_its_own_failure_with_exit_14(tmp_path, model, says):
    (tmp_path / "m.py").write_text(MODELS[model])
    p = edgekit("compile", "--model", f"{tmp_path / 'm.py'}:make", "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode == 14 and "Traceback" not in p.stderr, p.stderr
    assert "the reference (PyTorch eager)" in p.stderr and says in p.stderr, p.stderr
    assert "conversion failed" not in p.stderr and not (tmp_path / "b").exists()
    if model == "stateful":
        assert "make any state an explicit input and output" in p.stderr


def test_a_degenerate_reference_is_flagged_on_every_artifact(tmp_path):
    (tmp_path / "m.py").write_text('''
import torch
class Constant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([[0.5, -1.0, 2.0]]))
    def forward(self, x):
        return self.bias + 0.0 * x.sum()  # the same output whatever the input
def make():
    return Constant().eval(), torch.randn(1, 6)
''')
    p = edgekit("compile", "--model", f"{tmp_path / 'm.py'}:make", "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    assert "warning: the reference is degenerate" in p.stderr
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert "identical for every one of the 16 verification inputs" in m["model"]["reference_check"]["why"]
    assert all(any("cannot tell a right artifact from a wrong one" in c for c in a["verification"]["caveats"])
               for a in m["artifacts"])
    assert "passed, cos 1.000000 *" in p.stdout and "\n* onnxruntime-fp32: the reference is degenerate" in p.stdout


def test_a_torchscript_module_gets_the_hint_not_torch_exports_error(tmp_path):
    (tmp_path / "m.py").write_text('''
import torch
def make():
    return torch.jit.script(torch.nn.Linear(4, 2).eval()), torch.randn(1, 4)
''')
    p = edgekit("compile", "--model", f"{tmp_path / 'm.py'}:make", "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode == 3 and "returned a TorchScript module" in p.stderr and "eager nn.Module" in p.stderr


def _art(aid, precision, sha, quantized=None, status="passed"):
    conv = {"name": "x", "quantization": {"quantized_tensors": quantized}} if quantized is not None else {"name": "x"}
    return Artifact(id=aid, role="", format="pte", runtime="executorch", precision=precision, path=f"artifacts/{aid}.pte",
                    sha256=sha, size_bytes=1, inputs=[TensorSpec("x", (1, 4), "float32")],
                    outputs=[TensorSpec("y", (1, 2), "float32")],
                    verification=Verification(status=status, where="host-runtime", samples=16), converter=conv)


def test_an_int8_label_must_match_the_file():
    same = "a" * 64
    arts = [_art("executorch-int8", "int8", same, quantized=11), _art("executorch-fp32", "fp32", same),
            _art("litert-int8", "int8", "b" * 64, quantized=0), _art("litert-fp32", "fp32", "c" * 64)]
    notes, demoted = check_claims(arts, None, "digits held-out test split (397)")
    by = {a.id: a for a in arts}
    assert by["executorch-int8"].verification.status == "failed"
    assert "byte-identical to executorch-fp32" in by["executorch-int8"].verification.reason
    assert by["executorch-fp32"].verification.status == "passed"  # identical bytes can honestly be fp32
    assert "no quantized tensor" in by["litert-int8"].verification.reason
    assert len(notes) == 2 and demoted == []


def test_int8_checked_only_on_made_up_inputs_is_never_the_primary():
    arts = [_art("litert-int8", "int8", "a" * 64, quantized=12), _art("litert-fp32", "fp32", "b" * 64),
            _art("executorch-int8", "int8", "c" * 64, quantized=11)]
    notes, demoted = check_claims(arts, None, "random")
    verified = assign_roles(arts, {a.id: (a.id in demoted, i) for i, a in enumerate(arts)})
    assert verified[0].id == "litert-fp32" and [a.role for a in arts] == ["primary", "fallback", "fallback"]
    assert demoted == ["litert-int8", "executorch-int8"]
    assert all(RANDOM_DATA_CAVEAT in a.verification.caveats for a in arts if a.precision == "int8")
    assert "verification_inputs" in notes[-1] and "--calibration" in notes[-1]
    # with real held-out data the profile's order stands
    arts = [_art("litert-int8", "int8", "a" * 64, quantized=12), _art("litert-fp32", "fp32", "b" * 64)]
    _, demoted = check_claims(arts, None, "digits held-out test split (397)")
    assert demoted == [] and assign_roles(arts, {a.id: (a.id in demoted, i) for i, a in enumerate(arts)})[0].id == \
        "litert-int8"


def test_a_toolchain_failure_is_blamed_on_its_actual_cause(tmp_path):
    """The outer message quotes the node being processed (aten.batch_norm at the first conv); the
    cause, raised inside another function of the user's model, is what the message must name."""
    import json

    from conftest import import_file
    from edgekit.graphops import explain_failure

    model = tmp_path / "detector.py"
    model.write_text("def head(x):\n    raise RuntimeError('tensor-valued constant in head')\n")
    ops = [{"op": "aten.batch_norm.default", "node": "batch_norm", "source": {
        "file": str(model), "line": 1, "function": "backbone", "code": "self.bn(self.conv(x))"}}]
    (tmp_path / "ops.json").write_text(json.dumps({"ops": ops}))
    try:
        try:
            import_file(model).head(0)
        except RuntimeError as inner:
            raise RuntimeError("while processing %batch_norm = aten.batch_norm(...): failed") from inner
    except RuntimeError as e:
        msg, _ = explain_failure("convert", "litert-torch (litert)", e, tmp_path / "ops.json")
    assert "batch_norm" not in msg.split(":")[0] and "at operator" not in msg, msg
    assert f"{model}:2" in msg and "tensor-valued constant in head" in msg, msg
