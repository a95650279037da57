"""The basic calibration reader: one contract, limits, seeds, clear errors, held-out check."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.calibration import check_disjoint, dataset_hash, read_arrays
from edgekit.errors import ModelSourceError

EX = {"image": np.zeros((1, 1, 8, 8), np.float32)}


def test_npy_stack_folder_and_limit(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.standard_normal((10, 1, 8, 8)))  # float64 stack, batch axis folded
    np.save(tmp_path / "b.npy", rng.standard_normal((1, 1, 8, 8)).astype(np.float32))  # one sample
    s = read_arrays(tmp_path, EX)
    assert len(s) == 11 and all(x["image"].shape == (1, 1, 8, 8) and x["image"].dtype == np.float32 for x in s)
    a, b = read_arrays(tmp_path, EX, limit=4, seed=1), read_arrays(tmp_path, EX, limit=4, seed=1)
    assert len(a) == 4 and dataset_hash(a) == dataset_hash(b)  # fixed seed: same subset
    assert dataset_hash(a) != dataset_hash(read_arrays(tmp_path, EX, limit=4, seed=2))


def test_npz_multi_input_and_errors(tmp_path):
    ex = {"input_ids": np.zeros((1, 4), np.int64), "attention_mask": np.ones((1, 4), np.int64)}
    np.savez(tmp_path / "c.npz", input_ids=np.arange(12).reshape(3, 4), attention_mask=np.ones((3, 4)))
    s = read_arrays(tmp_path / "c.npz", ex)
    assert len(s) == 3 and s[2]["input_ids"].tolist() == [[8, 9, 10, 11]]
    np.savez(tmp_path / "bad.npz", input_ids=np.zeros((2, 4)))
    with pytest.raises(ModelSourceError, match="missing arrays"):
        read_arrays(tmp_path / "bad.npz", ex)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3)))
    with pytest.raises(ModelSourceError, match="does not fit"):
        read_arrays(tmp_path / "wrong.npy", EX)


def test_overlap_with_verification_data_is_refused():
    rng = np.random.default_rng(0)
    calib = [{"image": rng.standard_normal((1, 1, 8, 8)).astype(np.float32)} for _ in range(5)]
    verify = [{"image": rng.standard_normal((1, 1, 8, 8)).astype(np.float32)} for _ in range(3)]
    check_disjoint(calib, verify)
    with pytest.raises(ModelSourceError, match="also appear in the calibration data"):
        check_disjoint(calib, verify + [calib[2]])
