"""Bad input gets a clear one-line error, the documented exit code, and runs nothing."""
from __future__ import annotations

import io
import os
import pickle
import zipfile

import pytest

from conftest import edgekit


def _one_line_error(p, code: int) -> str:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2 and lines[0].startswith("edgekit: error: "), p.stderr  # the error (+ a hint)
    return p.stderr


def test_unknown_target_suggests_and_exits_2(tmp_path):
    err = _one_line_error(edgekit("compile", "--target", "cpux", "--out", tmp_path / "b"), 2)
    assert 'did you mean "cpu"' in err
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob("b.*partial")) and not (tmp_path / "b.edgekit.lock").exists()


def test_unknown_command_suggests():
    err = _one_line_error(edgekit("compil", "--target", "cpu"), 2)
    assert 'did you mean "compile"' in err


def test_unknown_builtin_suggests(tmp_path):
    err = _one_line_error(edgekit("compile", "--model", "builtin:digit", "--target", "cpu", "--out", tmp_path / "b"), 2)
    assert 'did you mean "digits"' in err


def test_missing_model_file(tmp_path):
    err = _one_line_error(edgekit("compile", "--model", tmp_path / "nope.onnx", "--target", "cpu",
                                  "--out", tmp_path / "b"), 3)
    assert "not found" in err and "nope.onnx" in err


class _Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"weight": _Evil(marker)}))
    err = _one_line_error(edgekit("compile", "--model", evil, "--target", "cpu", "--out", tmp_path / "b"), 4)
    assert "refused" in err
    assert not marker.exists(), "the pickle's payload ran"


def test_malicious_weights_for_a_factory_are_refused(tmp_path, tiny_factory):
    marker = tmp_path / "pwned"
    evil = tmp_path / "weights.pth"
    evil.write_bytes(pickle.dumps(_Evil(marker)))
    p = edgekit("compile", "--model", f"{tiny_factory}:make", "--weights", evil, "--target", "cpu",
                "--out", tmp_path / "b")
    assert "refused" in _one_line_error(p, 4)
    assert not marker.exists()


def test_malicious_pt2_archive_is_refused_before_torch_loads_it(tmp_path):
    """A real .pt2 whose constant is a code-running pickle that torch.export.load would unpickle."""
    import json

    import torch

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("k", torch.ones(2), persistent=False)  # a constant, not a weight

        def forward(self, x):
            return x + self.k

    marker = tmp_path / "pwned"
    good = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(M(), (torch.randn(1, 2),)), str(good))
    buf = io.BytesIO()
    torch.save(_Evil(marker), buf)
    evil = tmp_path / "model.pt2"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("_constants_config.json"):
                cfg = json.loads(data)
                for meta in cfg["config"].values():
                    meta["use_pickle"] = True
                    path_name = meta["path_name"]
                data = json.dumps(cfg).encode()
            dst.writestr(info.filename, data)
        dst.writestr(f"good/data/constants/{path_name}", buf.getvalue())
    err = _one_line_error(edgekit("compile", "--model", evil, "--target", "cpu", "--out", tmp_path / "b"), 4)
    # the payload member is written a second time under the same name: refused for that first
    assert "two members named" in err or "stored as a pickle" in err
    assert not marker.exists()


def test_onnx_external_data_escaping_the_folder_is_refused(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    w = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "16")):
        w.external_data.add(key=k, value=v)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    path = model_dir / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    err = _one_line_error(edgekit("compile", "--model", path, "--target", "cpu", "--out", tmp_path / "b"), 4)
    assert "outside the model's folder" in err


def test_weights_only_file_as_model_says_what_to_do(tmp_path):
    torch = pytest.importorskip("torch")
    sd = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, sd)
    err = _one_line_error(edgekit("compile", "--model", sd, "--target", "cpu", "--out", tmp_path / "b"), 3)
    assert "--weights" in err
