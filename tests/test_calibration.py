"""Calibration readers (arrays, image folders, text files): one contract, limits, seeds, clear errors, held-out check."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.calibration import check_disjoint, dataset_hash, read_arrays
from edgekit.errors import ModelSourceError

pytestmark = [pytest.mark.onnxruntime]

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


DIGITS_PREP = {"layout": "NCHW", "size": [8, 8], "channels": 1, "scale": 1 / 16, "mean": [0.0], "std": [1.0],
               "pixel_max": 16}


def _digit_pngs(folder, images) -> None:
    """sklearn digits (pixel values 0..16, normalized /16) written as 8-bit grayscale PNGs."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(images):
        Image.fromarray(np.round(x[0] * 255).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")


def test_image_folder_is_preprocessed_like_the_models_own_inputs(tmp_path):
    from edgekit.builtin.digits import splits
    from edgekit.calibration import read_calibration

    _, (xc, _), (xv, _) = splits()
    _digit_pngs(tmp_path / "calib", xc[:40])
    (tmp_path / "calib" / "notes.txt").write_text("ignored: not an image")
    s = read_calibration(tmp_path / "calib", EX, DIGITS_PREP)
    assert len(s) == 40 and s[0]["image"].shape == (1, 1, 8, 8) and s[0]["image"].dtype == np.float32
    got = np.stack([x["image"] for x in s])
    assert np.abs(got - xc[:40, None]).max() <= 0.5 / 255 + 1e-6  # only the PNG's 8-bit rounding differs
    a = read_calibration(tmp_path / "calib", EX, DIGITS_PREP, limit=8, seed=3)
    assert len(a) == 8 and dataset_hash(a) == dataset_hash(read_calibration(tmp_path / "calib", EX, DIGITS_PREP,
                                                                            limit=8, seed=3))
    # the verification split written as images is caught although PNG rounding changed every byte
    _digit_pngs(tmp_path / "leak", xv[:5])
    leaked = read_calibration(tmp_path / "leak", EX, DIGITS_PREP)
    with pytest.raises(ModelSourceError, match="near-identical"):
        check_disjoint(leaked, [{"image": xv[i:i + 1]} for i in range(len(xv))])


def test_image_folder_errors_say_what_is_missing(tmp_path):
    from edgekit.calibration import read_calibration

    _digit_pngs(tmp_path / "imgs", np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ModelSourceError, match="no size, channels"):
        read_calibration(tmp_path / "imgs", EX, {})
    tokens = {"input_ids": np.zeros((1, 8), np.int64)}
    with pytest.raises(ModelSourceError, match="one 4-D image input"):
        read_calibration(tmp_path / "imgs", tokens, DIGITS_PREP)
    (tmp_path / "imgs" / "0000.png").write_bytes(b"not a png")
    with pytest.raises(ModelSourceError, match="not a readable image"):
        read_calibration(tmp_path / "imgs", EX, DIGITS_PREP)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="no .npy/.npz arrays and no images"):
        read_calibration(tmp_path / "empty", EX, DIGITS_PREP)


def test_text_file_is_tokenized_with_the_models_tokenizer(tmp_path):
    from edgekit.builtin import minilm
    from edgekit.calibration import read_calibration

    lines = ["Return the number of items in a container.", "", "Open a file and return a stream."]
    (tmp_path / "c.txt").write_text("\n".join(lines), encoding="utf-8")
    tok = minilm.tokenizer()
    example = minilm.tokenize(tok, "x")
    prep = {"tokenizer_json": str(minilm.model_dir() / "tokenizer.json")}
    s = read_calibration(tmp_path / "c.txt", example, prep)
    assert len(s) == 2  # the empty line is not a sample
    for got, line in zip(s, [lines[0], lines[2]]):
        want = minilm.tokenize(tok, line)
        assert all(np.array_equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
    with pytest.raises(ModelSourceError, match="token models"):
        read_calibration(tmp_path / "c.txt", EX, prep)
    with pytest.raises(ModelSourceError, match="no tokenizer"):
        read_calibration(tmp_path / "c.txt", example, {})


@pytest.mark.slow
def test_compile_int8_calibrated_from_an_image_folder(tmp_path):
    import json

    from conftest import edgekit
    from edgekit.builtin.digits import splits

    _, (xc, _), _ = splits()
    _digit_pngs(tmp_path / "photos", xc[:64])
    out = tmp_path / "b"
    edgekit("compile", "--target", "cpu", "--precision", "int8", "--calibration", tmp_path / "photos", "--out", out,
            "--min-time", "0.2", "--warmup", "0.1", "--min-runs", "20", check=True)  # its ranking bench: enough to rank
    m = json.loads((out / "manifest.json").read_text())
    cal = m["model"]["calibration"]
    assert cal["samples"] == 64 and str(tmp_path / "photos") in cal["source"] and len(cal["sha256"]) == 64
    art = next(a for a in m["artifacts"] if a["id"] == "onnxruntime-int8")
    assert {a["precision"] for a in m["artifacts"]} == {"int8"} and art["verification"]["status"] == "passed"
    assert art["verification"]["metrics"]["logits"]["top1_agreement"] >= 0.99
