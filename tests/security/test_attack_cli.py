"""Class 8: what used to end in a raw traceback is one line and an exit code: an artifact that throws
under `verify`; an --out or --json the user cannot write (checked before any work, so no bench
result is lost); a manifest nested deeper than any real one; nonsense --threads."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from attack import edgekit_cli, one_line_error, snapshot

pytestmark = [pytest.mark.onnxruntime]


def test_verify_on_an_artifact_that_throws_is_a_failed_check_not_a_crash(tiny_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    art = m["artifacts"][0]
    path = b / art["path"]
    model = onnx.load(str(path))
    out = model.graph.output[0].name
    for n in model.graph.node:
        n.output[:] = [o + "_orig" if o == out else o for o in n.output]
    # Gather at index 1000 of a one-element table: ONNX Runtime raises on every run
    model.graph.node.extend([helper.make_node("Gather", ["table", "k"], ["g"]),
                             helper.make_node("Add", [out + "_orig", "g"], [out])])
    model.graph.initializer.extend([numpy_helper.from_array(np.zeros(1, np.float32), "table"),
                                    numpy_helper.from_array(np.array(1000, np.int64), "k")])
    onnx.save(model, str(path))
    data = path.read_bytes()
    art["sha256"], art["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (b / "manifest.json").write_text(json.dumps(m))
    p = edgekit_cli("verify", b, "--no-history")
    err = one_line_error(p, 7)
    assert f"{art['id']}: raised on the self-test vectors" in err
    assert "passed" in p.stdout  # the other artifacts were still checked


def test_a_manifest_nested_deeper_than_any_real_one_is_one_line(tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    (b / "manifest.json").write_text('{"schema": "edgekit.bundle/1", "artifacts": ' + "[" * 200000 + "]" * 200000 + "}")
    for argv in (["verify", b, "--no-history"], ["package", b, "--for", "linux", "--out", tmp_path / "p"]):
        assert "not valid JSON" in one_line_error(edgekit_cli(*argv), 8)


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_nonsense_thread_counts_are_usage_errors(tiny_bundle, threads):
    err = one_line_error(edgekit_cli("bench", tiny_bundle, "--threads", threads, "--no-history"), 2)
    assert "--threads" in err


def test_a_result_file_that_is_a_folder_is_refused_before_benchmarking(tiny_bundle, tmp_path):
    before = snapshot(tmp_path)
    p = edgekit_cli("bench", tiny_bundle, "--json", tmp_path, "--no-history")
    assert "is a folder" in one_line_error(p, 2) and "bench" not in p.stderr.split("error:")[0]
    assert snapshot(tmp_path) == before


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write to. Root ignores permission bits, so for root it is /proc
    (no new files there, for anyone); otherwise a folder with mode 555."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    yield ro
    ro.chmod(0o755)


def test_unwritable_out_and_json_are_usage_errors_before_any_work(tiny_bundle, tmp_path, unwritable):
    before = snapshot(tmp_path)
    cases = [(["compile", "--target", "cpu", "--out", unwritable / "edgekit-b"], "--out"),
             (["package", tiny_bundle, "--for", "linux", "--out", unwritable / "edgekit-pkg"], "--out"),
             (["bench", tiny_bundle, "--json", unwritable / "edgekit-r.json", "--no-history"], "--json"),
             (["gate", "--baseline", tiny_bundle, "--candidate", tiny_bundle, "--markdown",
               unwritable / "edgekit-g.md"], "--markdown")]
    for argv, opt in cases:
        p = edgekit_cli(*argv)
        err = one_line_error(p, 2)
        assert opt in err and "cannot write there" in err, err
        assert "[edgekit]" not in p.stderr  # refused before any work started: no result lost
    assert snapshot(tmp_path) == before and not list(unwritable.glob("edgekit-*"))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_numpy_data_holding_a_pickle_is_refused_and_never_unpickled(tmp_path, suffix):
    """--verify-data and --calibration read numpy files with allow_pickle=False; an object array (a
    pickle inside the .npy/.npz) is refused by name, exit 3, and its payload never runs."""
    from attack import Payload

    from conftest import TINY_CNN

    marker = tmp_path / "PWNED"
    evil = tmp_path / f"data{suffix}"
    arr = np.array([Payload(marker)], dtype=object)
    np.save(evil, arr, allow_pickle=True) if suffix == ".npy" else np.savez(evil, pixels=arr)
    for opt in ("--verify-data", "--calibration"):
        p = edgekit_cli("compile", "--model", f"{TINY_CNN}:make", "--target", "cpu", opt, evil, "--out", tmp_path / "b")
        assert "holds Python objects (a pickle), which edgekit never loads" in one_line_error(p, 3)
    assert not marker.exists()
