"""Unsafe model files are refused before anything unpickles them; plain ones are not."""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import pytest
import torch

from edgekit.errors import UnsafeModelError
from edgekit.sources.exported import load_pt2
from edgekit.sources.safety import check_pickle_bytes, check_pickle_file, check_pt2, pickle_globals


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_plain_state_dicts_pass_including_values_that_look_like_pickle_headers(tmp_path):
    p = tmp_path / "sd.pt"
    # int64 128 little-endian starts with 0x80 0x00: a raw storage must not be mistaken for a pickle
    torch.save({"w": torch.randn(3, 3), "num_batches_tracked": torch.tensor([128, 5])}, p)
    check_pickle_file(p)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    m.get_submodule("1").num_batches_tracked.fill_(128)
    ep = torch.export.export(m.eval(), (torch.randn(1, 1, 5, 5),))
    p2 = tmp_path / "bn.pt2"
    torch.export.save(ep, str(p2))
    check_pt2(p2)
    assert [a.shape for a in load_pt2(p2).example.values()] == [(1, 1, 5, 5)]


@pytest.mark.parametrize("proto", [0, 1, 2, 4, 5])
def test_code_running_pickle_is_named_at_every_protocol(proto):
    data = pickle.dumps([1, _Evil()], protocol=proto)
    with pytest.raises(UnsafeModelError, match="system"):
        check_pickle_bytes(data, "x")


def test_stack_global_operand_trick_is_refused():
    # push "os","getpid", then harmless strings, POP them, STACK_GLOBAL: imports os.getpid
    evil = (b"\x80\x04\x8c\x02os\x8c\x06getpid\x8c\x0bcollections\x8c\x0bOrderedDict0" + b"0" + b"\x93)R.")
    assert pickle.loads(evil) == os.getpid()  # the trick is real: this pickle runs os.getpid
    with pytest.raises(UnsafeModelError):
        check_pickle_bytes(evil, "x")


def test_second_pickle_in_a_stream_is_scanned():
    data = pickle.dumps(1, protocol=2) + pickle.dumps(_Evil(), protocol=2)
    assert ("posix", "system") in pickle_globals(data) or ("os", "system") in pickle_globals(data)


def _pt2_with(tmp_path, mutate) -> str:
    m = torch.nn.Linear(2, 2)
    p = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(m, (torch.randn(1, 2),)), str(p))
    out = tmp_path / "evil.pt2"
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, mutate(info.filename, data))
    return out


def test_pt2_with_a_pickled_weight_is_refused_before_torch_runs_it(tmp_path):
    def mutate(name, data):
        if name.endswith("_weights_config.json"):
            cfg = json.loads(data)
            next(iter(cfg["config"].values()))["use_pickle"] = True
            return json.dumps(cfg).encode()
        return data

    with pytest.raises(UnsafeModelError, match="stored as a pickle"):
        check_pt2(_pt2_with(tmp_path, mutate))


def test_pt2_with_unsafe_sample_inputs_is_refused(tmp_path):
    buf = io.BytesIO()
    torch.save(_Evil(), buf)

    def mutate(name, data):
        return buf.getvalue() if "/data/sample_inputs/" in name else data

    path = _pt2_with(tmp_path, mutate)
    # The configs are clean, but the sample inputs' pickle would make torch fall back to
    # weights_only=False: the static scan (no torch) already names the import, and so does the loader.
    with pytest.raises(UnsafeModelError, match="system"):
        check_pt2(path)
    with pytest.raises(UnsafeModelError, match="system"):
        load_pt2(path)
