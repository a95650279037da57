"""A native crash in a step becomes a clear ConversionError naming the signal and the log."""
from __future__ import annotations

import pytest

from edgekit.errors import ConversionError, UnsafeModelError
from edgekit.isolate import run_step


def test_sigabrt_in_child_becomes_a_failed_step(tmp_path):
    with pytest.raises(ConversionError, match="SIGABRT") as e:
        run_step("convert-x", "os:abort", {}, tmp_path)  # what a crashing native toolchain does
    assert str(tmp_path / "convert-x.log") in e.value.message


def test_python_error_in_child_keeps_traceback_in_log(tmp_path):
    with pytest.raises(ConversionError, match="JSONDecodeError") as e:
        run_step("parse", "json:loads", {"s": "{"}, tmp_path)
    assert "Traceback" in (tmp_path / "parse.log").read_text()
    assert "parse.log" in e.value.message


def test_user_errors_cross_the_process_boundary_with_their_class(tmp_path):
    evil = tmp_path / "evil.pt2"
    evil.write_bytes(b"not a zip")
    with pytest.raises(UnsafeModelError):
        run_step("prepare", "edgekit.steps:prepare",
                 {"spec": str(evil), "weights": None, "workdir": str(tmp_path / "w"), "need_onnx": True}, tmp_path)


def test_result_of_a_healthy_step(tmp_path):
    assert run_step("dump", "json:dumps", {"obj": [1, 2]}, tmp_path) == "[1, 2]"
