"""Refuse model files that would run code or read outside their folder — before anything loads them.

- `.pt`/`.pth` state dicts load only through `torch.load(weights_only=True)`.
- `.pt2` archives: `torch.export.load` unpickles some members with `weights_only=False` (and
  `pickle.loads`), so every pickle inside the archive is scanned statically first (pickletools
  reads opcodes; nothing is executed) and any import outside a small allow-list is refused.
- `.onnx` external-data locations must stay inside the model's folder (no absolute paths,
  no `..`, no symlinks that lead out).
"""
from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

from ..errors import UnsafeModelError

# Globals a tensor/state-dict pickle legitimately imports. Anything else (os.system, builtins.eval,
# a user class ...) means the pickle would run or construct arbitrary code.
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"), ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_wrapper_subclass"), ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._tensor", "_rebuild_from_type_v2"), ("torch", "Size"), ("torch", "device"),
    ("torch", "Tensor"), ("torch.nn.parameter", "Parameter"), ("torch.serialization", "_get_layout"),
    ("torch", "strided"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
    ("builtins", "complex"),
}
_SAFE_MODULE_PREFIXES = ("torch.",)  # e.g. torch.FloatStorage, torch.float32 (dtype objects)
_SAFE_TORCH_NAMES_SUFFIX = ("Storage",)


def _global_ok(module: str, name: str) -> bool:
    if (module, name) in _SAFE_GLOBALS:
        return True
    if module == "torch" and (name.endswith(_SAFE_TORCH_NAMES_SUFFIX) or name in {
            "float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool",
            "qint8", "quint8", "qint32", "per_tensor_affine", "per_channel_affine"}):
        return True
    return False


def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle would import, read from its opcodes without executing it."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []  # recent string pushes, for STACK_GLOBAL
    for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
        if op.name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            found.append((module, name))
        elif op.name == "STACK_GLOBAL":
            found.append((strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?"))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(str(arg))
        elif op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            pass
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            strings.append("?memo")  # a memoized string: can't tell statically; treated as unsafe
    return found


def _looks_like_pickle(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x80 and data[1] <= 5


def check_pickle_bytes(data: bytes, where: str) -> None:
    try:
        globs = pickle_globals(data)
    except Exception as e:
        raise UnsafeModelError(f"{where}: unreadable pickle ({e}); refused") from None
    bad = [f"{m}.{n}" for m, n in globs if not _global_ok(m, n)]
    if bad:
        raise UnsafeModelError(
            f"{where}: refused — this pickle would import {', '.join(sorted(set(bad))[:5])}, which can run code; "
            "edgekit never unpickles such files",
            hint="export the model with torch.export.save from trusted code, or give a factory + a weights-only state dict")


def scan_archive(path: Path) -> None:
    """Statically check every pickle inside a zip archive (.pt2, or torch.save's zip format)."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UnsafeModelError(f"{path}: not a zip archive (a .pt2 is one); refused") from None
    with zf:
        for info in zf.infolist():
            data = zf.read(info)
            where = f"{path.name}:{info.filename}"
            if data[:4] == b"PK\x03\x04":  # a nested torch.save archive
                _scan_nested(data, where)
            elif info.filename.endswith(".pkl") or _looks_like_pickle(data):
                check_pickle_bytes(data, where)


def _scan_nested(data: bytes, where: str) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            inner = zf.read(info)
            if info.filename.endswith(".pkl") or _looks_like_pickle(inner):
                check_pickle_bytes(inner, f"{where}/{info.filename}")


def check_pickle_file(path: Path) -> None:
    """A torch.save/.pt2 zip archive or a legacy raw pickle: refuse if any pickle in it would run code."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        scan_archive(path)
    elif head[:1] == b"\x80":
        check_pickle_bytes(path.read_bytes(), path.name)
    else:
        raise UnsafeModelError(f"{path}: neither a torch archive nor a pickle; refused")


def load_state_dict(path: Path):
    """torch.load(weights_only=True) only; a pickle that wants code is refused, not run."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unpickling refused"
        raise UnsafeModelError(
            f"{path}: refused — it is not a plain weights file ({first[:160]}); edgekit loads .pt/.pth "
            "with weights_only=True and never runs code from a pickle",
            hint="save weights with torch.save(model.state_dict(), path) and pass "
                 "--model file.py:factory --weights path") from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise UnsafeModelError(f"{path}: not a readable torch weights file ({str(e).splitlines()[0][:160]})") from None


def check_onnx_external_data(model_path: Path) -> None:
    """Refuse an ONNX file whose external-data locations escape its folder."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    model = onnx.load(str(model_path), load_external_data=False)
    root = model_path.parent.resolve()
    for t in _get_all_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (root / loc).resolve()
        if Path(loc).is_absolute() or root not in target.parents:
            raise UnsafeModelError(
                f"{model_path}: tensor {t.name!r} points its external data at {loc!r}, outside the model's "
                "folder; refused (a model file must not read other files on this machine)")
        if not target.is_file():
            raise UnsafeModelError(f"{model_path}: external data file {loc!r} for tensor {t.name!r} is missing")
