"""Class 6: ONNX files. Every tensor's external data (sparse ones and those inside subgraphs too)
must stay inside the model's folder, within its file; declared inputs are bounded; malformed
locations are one-line errors. External data that does stay inside compiles into self-contained
artifacts. Before: such a model could not be compiled (its data file was not carried), sparse
external data was not scanned, a 3e8-element input allocated ~20 GB, a NUL gave a traceback."""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from attack import edgekit_cli, one_line_error, snapshot

pytestmark = [pytest.mark.onnxruntime]

W = np.arange(32, dtype=np.float32).reshape(8, 4) / 10


def _model(shape=(1, 8), extra_nodes=(), sparse=(), inits=()):
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"]), *extra_nodes], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 4])],
                          [numpy_helper.from_array(W, "W"), *inits], sparse_initializer=list(sparse))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _external(name, location, dims=(4,), offset=None, length=None):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims), data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            t.external_data.add(key=k, value=str(v))
    return t


@pytest.fixture
def secret(tmp_path):
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())  # a file outside the model folder
    d = tmp_path / "model"
    d.mkdir()
    return d


def _sparse_outside():
    values = _external("sv", "../secret.bin")
    return onnx.SparseTensorProto(values=values, indices=numpy_helper.from_array(np.arange(4, dtype=np.int64), "si"),
                                  dims=[8])


def _subgraph_outside():
    """An If whose branch holds a Constant with external data outside; its condition is an initializer,
    so the model is valid and a runtime would read the branch."""
    then = helper.make_graph([helper.make_node("Constant", [], ["c"], value=_external("c", "../secret.bin"))],
                             "then", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4])])
    return helper.make_node("If", ["cond"], ["unused"], then_branch=then, else_branch=then)


COND = numpy_helper.from_array(np.array(True), "cond")


ATTACKS = {
    "sparse initializer reads outside": (lambda: _model(sparse=[_sparse_outside()]), 4, "outside the model's folder"),
    "subgraph constant reads outside": (lambda: _model(extra_nodes=[_subgraph_outside()], inits=[COND]), 4,
                                        "outside the model's folder"),
    "NUL in a location": (lambda: _model(inits=[_external("e", "w\x00.bin")]), 4, "control characters"),
    "offset past the end": (lambda: _model(inits=[_external("e", "w.bin", offset=1 << 30, length=16)]), 4,
                            "reads bytes"),
    "3e8-element input": (lambda: _model(shape=(100000, 3000)), 3, "300,000,000 elements"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_malicious_onnx_is_refused_in_one_line_before_any_work(secret, tmp_path, attack):
    make, code, says = ATTACKS[attack]
    (secret / "w.bin").write_bytes(b"\0" * 16)
    path = secret / "model.onnx"
    path.write_bytes(make().SerializeToString())
    before = snapshot(tmp_path)
    err = one_line_error(edgekit_cli("compile", "--model", path, "--target", "cpu", "--out", tmp_path / "b"), code)
    assert says in err, err
    assert snapshot(tmp_path) == before
    # the gate's bare-.onnx path runs the same check before ONNX Runtime sees the file
    assert one_line_error(edgekit_cli("gate", "--baseline", path, "--candidate", path), 2)


def test_external_data_inside_the_model_folder_compiles_into_self_contained_artifacts(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    onnx.save_model(_model(), str(src / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (src / "weights.bin").stat().st_size == W.nbytes
    p = edgekit_cli("compile", "--model", src / "model.onnx", "--target", "cpu", "--out", tmp_path / "b")
    assert p.returncode in (0, 12), p.stderr  # 12: the torch-only candidates cannot take an ONNX model
    shutil.rmtree(src)  # the bundle must not need the source folder
    x = np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)
    y = edgekit.load(tmp_path / "b").predict(x)["y"]
    np.testing.assert_allclose(y, x @ W, rtol=1e-5, atol=1e-5)


def test_gate_on_a_file_onnx_runtime_rejects_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(_model().SerializeToString()[:-7])  # truncated
    err = one_line_error(edgekit_cli("gate", "--baseline", bad, "--candidate", bad), 2)
    assert "bad.onnx" in err
