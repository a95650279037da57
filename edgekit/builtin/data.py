"""Real data that ships with installed packages: photos (scikit-image, scikit-learn, matplotlib's
sample data) and sentences (the Python standard library's docstrings). Splits are by source, so
calibration and verification never share a photo or a sentence.
"""
from __future__ import annotations

import hashlib
import importlib
import re

import numpy as np

# Different photos for the two roles; `cat` is the same photo as `chelsea`, so it is not used. Every
# other real photo that ships offline is in one list or the other (skimage's horse, page, text, cell and
# the synthetic images are not photos).
VERIFY_PHOTOS = ["chelsea", "coffee", "rocket", "astronaut", "sklearn:china.jpg", "motorcycle_left",
                 "camera", "clock", "matplotlib:grace_hopper.jpg", "matplotlib:Minduka_Present_Blue_Pack.png"]
CALIB_PHOTOS = ["sklearn:flower.jpg", "motorcycle_right", "hubble_deep_field", "immunohistochemistry",
                "retina", "coins", "grass", "brick", "gravel", "moon"]


def photo(name: str) -> np.ndarray:
    """An RGB uint8 photo by name."""
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(name.split(":", 1)[1])
    elif name.startswith("matplotlib:"):
        from matplotlib import cbook
        from PIL import Image

        with Image.open(cbook.get_sample_data(name.split(":", 1)[1], asfileobj=False)) as im:
            img = np.asarray(im.convert("RGB"))
    elif name.startswith("motorcycle_"):
        import skimage.data

        left, right, _disp = skimage.data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def _boxes(h: int, w: int, fracs: tuple[float, ...]) -> list[tuple[int, int, int]]:
    """Distinct square boxes (y0, x0, side): per scale of the short side, the centre then the corners.
    Boxes that coincide (a square photo's corners at full scale) are listed once: duplicated samples
    would count one crop several times in verification and calibration."""
    found: list[tuple[int, int, int]] = []
    for frac in fracs:
        s = int(min(h, w) * frac)
        for fy, fx in ((0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)):
            box = (int((h - s) * fy), int((w - s) * fx), s)
            if box not in found:
                found.append(box)
    return found


def _crop(img: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    from skimage.transform import resize

    y0, x0, s = box
    return resize(img[y0:y0 + s, x0:x0 + s].astype(np.float32) / 255.0, (size, size), anti_aliasing=True).astype(np.float32)


def crops(img: np.ndarray, size: int, count: int) -> list[np.ndarray]:
    """`count` distinct deterministic square crops (the largest centred one, then the corners and
    centre at smaller scales: 1.0, 0.7, 0.5) resized to size x size, as float32 RGB in [0, 1]."""
    return [_crop(img, box, size) for box in _boxes(*img.shape[:2], (1.0, 0.7, 0.5))[:count]]


def held_out_crops(img: np.ndarray, size: int, boxes: int = 10) -> list[np.ndarray]:
    """More held-out samples per photo than crops(): `boxes` distinct boxes over four scales (1.0, 0.8,
    0.6, 0.45 of the short side; centre and corners), each also mirrored left-right, resized to size x
    size, float32 RGB in [0, 1]. Crops of one photo share content, so they are correlated samples:
    an interval computed as if they were independent is optimistic."""
    out = []
    for box in _boxes(*img.shape[:2], (1.0, 0.8, 0.6, 0.45))[:boxes]:
        c = _crop(img, box, size)
        out += [c, np.ascontiguousarray(c[:, ::-1])]
    return out


_STDLIB = ["json", "os", "re", "collections", "functools", "itertools", "pathlib", "textwrap", "string",
           "random", "statistics", "heapq", "bisect", "shutil", "tempfile", "csv", "datetime", "decimal",
           "fractions", "zipfile", "tarfile", "gzip", "hashlib", "base64", "difflib", "argparse",
           "logging", "typing", "dataclasses", "enum", "contextlib", "inspect", "ast", "tokenize",
           "urllib.parse", "html", "sqlite3", "threading", "queue", "subprocess", "socket", "math",
           "calendar", "copy", "pprint", "struct", "uuid", "ipaddress", "glob", "fnmatch", "locale"]


def sentences() -> list[str]:
    """Sentences from standard-library docstrings: deterministic, offline, real English prose.
    (The MiniLM models' held-out and calibration sentences: keep this list as it is.)"""
    return _docstring_sentences(_STDLIB, members=False)


# Modules whose import has side effects (a browser, a window, an easter egg) or that need a GUI.
_NOT_IMPORTED = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "ensurepip", "venv",
                 "lib2to3", "pydoc_data"}


def transfer_sentences() -> list[str]:
    """More prose for distillation: docstrings of every importable standard-library module, its
    public names and their public methods (7,573 sentences on Python 3.11 here, vs 2,380 in sentences()).
    Split with split_by_hash like sentences(), its held-out part holds every held-out sentence of
    sentences(), so the calibration part never overlaps the MiniLM held-out set."""
    import sys

    names = sorted(m for m in sys.stdlib_module_names if not m.startswith("_") and m not in _NOT_IMPORTED)
    return _docstring_sentences(names, members=True)


def _docstring_sentences(modules: list[str], members: bool) -> list[str]:
    import types
    import warnings

    seen, out = set(), []
    for modname in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated modules warn on import
                mod = importlib.import_module(modname)
        except Exception:  # noqa: BLE001 — a platform-specific module (winreg, msvcrt ...): not here
            continue
        objs = [mod]
        for n in sorted(dir(mod)):
            if n.startswith("_"):
                continue
            obj = getattr(mod, n, None)
            if members and isinstance(obj, types.ModuleType):
                continue  # a submodule is there only if something imported it: the corpus would vary
            objs.append(obj)
            if members and isinstance(obj, type) and str(getattr(obj, "__module__", "")).startswith(modname):
                objs += [getattr(obj, a, None) for a in sorted(vars(obj)) if not a.startswith("_")]
        for obj in objs:
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str):
                continue
            for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if 30 <= len(s) <= 240 and s[0].isupper() and s not in seen and ">>>" not in s:
                    seen.add(s)
                    out.append(s)
    return sorted(out)


def split_by_hash(items: list[str], held_out_every: int = 4) -> tuple[list[str], list[str]]:
    """(calibration, verification) split by a stable hash of each item: never overlapping."""
    calib, verify = [], []
    for s in items:
        bucket = int(hashlib.sha256(s.encode()).hexdigest()[:8], 16) % held_out_every
        (verify if bucket == 0 else calib).append(s)
    return calib, verify
