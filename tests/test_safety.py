"""The static pickle scanner: sees every import a pickle would make without executing it."""
from __future__ import annotations

import io
import os
import pickle

import pytest
import torch

from edgekit.errors import UnsafeModelError
from edgekit.sources.safety import check_pickle_bytes, pickle_globals, scan_archive


def test_plain_state_dict_archive_passes(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save({"w": torch.randn(3, 3), "b": torch.zeros(3, dtype=torch.int64)}, p)
    scan_archive(p)  # torch.save's zip format with data.pkl inside


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_code_running_pickle_is_named(proto):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    data = pickle.dumps([1, Evil()], protocol=proto)
    assert ("posix", "system") in pickle_globals(data) or ("os", "system") in pickle_globals(data)
    with pytest.raises(UnsafeModelError, match="system"):
        check_pickle_bytes(data, "x")


def test_real_pt2_archive_passes_the_scan(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    ep = torch.export.export(m, (torch.randn(1, 4),))
    p = tmp_path / "m.pt2"
    torch.export.save(ep, str(p))
    scan_archive(p)
