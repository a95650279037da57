"""The Python API, written the way a notebook user writes it: a model object in memory, no shell.

A small CNN made here (not a built-in) is compiled for the cpu target with edgekit.compile, then the
returned Bundle is benchmarked, loaded and explained, and its errors are the typed exceptions."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.onnxruntime, pytest.mark.torchscript_lite]


def _model():
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.head = torch.nn.Linear(8, 4)

        def forward(self, image):
            return self.head(torch.relu(self.conv(image)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    return Net().eval()


def test_notebook_user_compiles_benches_and_loads(tmp_path):
    import torch

    import edgekit

    model = _model()
    x = torch.randn(1, 3, 16, 16)
    held_out = np.random.default_rng(1).standard_normal((24, 1, 3, 16, 16)).astype(np.float32)
    bundle = edgekit.compile(model, example_inputs=(x,), target="cpu", out=tmp_path / "net-cpu",
                             verify_data=held_out)
    assert isinstance(bundle, edgekit.api.Bundle) and not bundle.degraded
    assert bundle.primary.id == "onnxruntime-fp32" and bundle.primary.verification.status == "passed"
    assert bundle.primary.verification.samples == 24  # the arrays given, not made-up ones
    assert bundle.manifest.model["name"] == "Net" and [t.name for t in bundle.primary.inputs] == ["image"]
    assert "onnxruntime-fp32" in repr(bundle) and "passed" in bundle.summary()

    (result,) = bundle.bench(min_runs=5, min_time_s=0.05)
    assert result["artifact"] == "onnxruntime-fp32" and result["latency_ms"]["p50"] > 0 and result["runs"] >= 5
    # cpu is this machine: timing every artifact may make another one primary, and says so in the manifest
    timed = {r["artifact"]: r["latency_ms"]["p50"] for r in bundle.bench(choose_primary=True, min_runs=5, min_time_s=0.05)}
    choice = bundle.manifest.target["primary_choice"]
    assert set(timed) == {a.id for a in bundle.manifest.usable()} and choice["measured_on_device"]
    assert bundle.primary.id == min(timed, key=timed.get) and edgekit.open(bundle.path).primary.id == bundle.primary.id

    p = bundle.load()
    got = p.predict({"image": x.numpy()})
    want = model(x).detach().numpy()
    assert got[p.outputs[0].name].shape == (1, 4)
    assert np.allclose(got[p.outputs[0].name], want, atol=1e-4)
    assert bundle.explain()["onnxruntime-fp32"][-1].endswith("nothing was quantized")  # any artifact, primary or not
    assert edgekit.open(bundle.path).manifest.model["sha256"] == bundle.manifest.model["sha256"]


def test_errors_are_typed_and_nothing_exits(tmp_path):
    import edgekit
    from edgekit.errors import ModelSourceError, UsageError

    with pytest.raises(UsageError, match='did you mean "android"'):
        edgekit.compile("builtin:digits", target="androd", out=tmp_path / "x")
    with pytest.raises(UsageError, match="example_inputs"):
        edgekit.compile(_model(), target="cpu", out=tmp_path / "y")
    with pytest.raises(ModelSourceError):
        edgekit.compile(tmp_path / "missing.onnx", target="cpu", out=tmp_path / "z")
    assert not any(tmp_path.iterdir())  # refused before any work: nothing written
