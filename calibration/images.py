"""Calibration from a folder of images, preprocessed the way the model says it wants them.

The model's recorded `preprocessing` (ModelSource.preprocessing, in the manifest too) decides:
`size` [H, W], `channels` (1 = grayscale, 3 = colour; `color: "BGR"` flips), `layout` (NCHW or
NHWC), and the arithmetic `x = (pixel * scale - mean) / std` per channel, where `pixel` runs
0..`pixel_max` (255 for 8-bit images unless the model's own pixels run to another maximum, e.g.
16 for sklearn's digits: an 8-bit image is rescaled to that range first). Each image is
centre-cropped to the target aspect ratio, then resized (bilinear, antialiased).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelSourceError, ToolchainMissing

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _image_input(example: dict, prep: dict) -> str:
    four_d = [n for n, a in example.items() if a.ndim == 4]
    if len(four_d) != 1 or len(example) != 1:
        raise ModelSourceError("an image folder calibrates models with one 4-D image input; this model takes "
                               + ", ".join(f"{n}{list(a.shape)}" for n, a in example.items()),
                               hint="give --calibration as .npy/.npz arrays instead")
    missing = [k for k in ("size", "channels") if k not in prep]
    if missing:
        raise ModelSourceError(f"the model records no {', '.join(missing)} in its preprocessing, so images cannot "
                               "be prepared for it", hint="return preprocessing={'size': [H, W], 'channels': 3, "
                                                          "'layout': 'NCHW', 'scale': 1/255, 'mean': [...], 'std': "
                                                          "[...]} from your factory, or give .npy/.npz arrays")
    return four_d[0]


def preprocess(path: Path, prep: dict, spec: np.ndarray) -> np.ndarray:
    """One image file -> one model input shaped and typed like `spec`."""
    try:
        from PIL import Image
    except ImportError:
        raise ToolchainMissing("Pillow is not installed (needed to read calibration images)",
                               hint="pip install pillow") from None
    h, w = (int(v) for v in prep["size"])
    channels = int(prep["channels"])
    try:
        img = Image.open(path)
        img = img.convert("L" if channels == 1 else "RGB")
    except Exception as e:  # noqa: BLE001 — a broken file names itself
        raise ModelSourceError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    iw, ih = img.size
    if iw / ih > w / h:  # wider than the target: crop the sides
        cw = round(ih * w / h)
        img = img.crop(((iw - cw) // 2, 0, (iw - cw) // 2 + cw, ih))
    else:
        ch = round(iw * h / w)
        img = img.crop((0, (ih - ch) // 2, iw, (ih - ch) // 2 + ch))
    x = np.asarray(img.resize((w, h), Image.BILINEAR, reducing_gap=None), dtype=np.float32)
    x = x.reshape(h, w, channels)
    if str(prep.get("color", "RGB")).upper() == "BGR" and channels == 3:
        x = x[..., ::-1]
    x = x * (float(prep.get("pixel_max", 255.0)) / 255.0)
    x = (x * float(prep.get("scale", 1.0)) - np.asarray(prep.get("mean", [0.0]), np.float32)) \
        / np.asarray(prep.get("std", [1.0]), np.float32)
    if str(prep.get("layout", "NCHW")).upper() == "NCHW":
        x = x.transpose(2, 0, 1)
    x = x[None] if spec.ndim == 4 else x
    if x.shape != spec.shape:
        raise ModelSourceError(f"{path}: preprocessed to {list(x.shape)}, the model input is {list(spec.shape)}; "
                               "the model's recorded preprocessing (size/channels/layout) disagrees with its input")
    return np.ascontiguousarray(x, dtype=spec.dtype)


def read_images(folder: Path, example: dict, prep: dict, limit: int, seed: int) -> list[dict]:
    name = _image_input(example, prep)
    files = image_files(folder)
    if len(files) > limit:  # choose before decoding: a folder of 100k photos costs 256 decodes
        keep = np.sort(np.random.default_rng(seed).choice(len(files), size=limit, replace=False))
        files = [files[i] for i in keep]
    return [{name: preprocess(f, prep, example[name])} for f in files]
