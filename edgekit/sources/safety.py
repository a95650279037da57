"""Refuse model files that would run code or read outside their folder — before anything loads them.

- `.pt`/`.pth` state dicts load only through `torch.load(weights_only=True)` (torch's restricted
  unpickler: the guard). A static scan of their `data.pkl` runs first in the parent, only so the
  refusal comes before any work starts.
- `.pt2` archives: `torch.export.load` unpickles a member with `weights_only=False` (or
  `pickle.loads`) when its payload config says `use_pickle`, when it is a custom/opaque object,
  or when `sample_inputs` fails to load weights-only. `check_pt2` refuses exactly those cases from
  the archive's JSON configs (no pickle is parsed, nothing executed); `check_pt2_sample_inputs`
  loads the sample inputs weights-only first, so torch never falls back.
- `.onnx` external-data locations must stay inside the model's folder (no absolute paths,
  no `..`, no symlinks that lead out).
"""
from __future__ import annotations

import io
import json
import pickletools
import zipfile
from pathlib import Path

from ..errors import ModelSourceError, UnsafeModelError

# Globals a tensor/state-dict pickle legitimately imports; anything else can run code.
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"), ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Size"), ("torch", "device"), ("torch.serialization", "_get_layout"),
}
_TORCH_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"}
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_MEMO_PUT = {"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_REFUSED_OPS = {"EXT1", "EXT2", "EXT4"}  # imports through the copyreg extension registry


def _global_ok(module: str, name: str) -> bool:
    return ((module, name) in _SAFE_GLOBALS
            or (module == "torch" and (name.endswith("Storage") or name in _TORCH_DTYPES)))


class _Unverifiable(Exception):
    pass


def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) the pickle(s) in `data` would import, read from opcodes, never executed.

    Conservative: a STACK_GLOBAL whose two operands are not the strings pushed (or fetched from
    the memo) right before it cannot be resolved statically and raises _Unverifiable. Every
    pickle in the stream is read, not just the first.
    """
    found: list[tuple[str, str]] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        memo: dict[int, object] = {}
        recent: list[object] = []  # values pushed by the latest ops, None = not a known string
        for op, arg, _pos in pickletools.genops(stream):
            name = op.name
            if name in _REFUSED_OPS:
                raise _Unverifiable(f"opcode {name}")
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append((module, attr))
                recent.append(None)
            elif name == "STACK_GLOBAL":
                if len(recent) < 2 or not all(isinstance(v, str) for v in recent[-2:]):
                    raise _Unverifiable("STACK_GLOBAL with operands that are not plain strings")
                found.append((recent[-2], recent[-1]))
                recent = recent[:-2] + [None]
            elif name in _STRING_OPS:
                recent.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
            elif name in _MEMO_PUT:
                idx = len(memo) if name == "MEMOIZE" else arg
                memo[idx] = recent[-1] if recent else None
            elif name in _MEMO_GET:
                recent.append(memo.get(arg))
            elif name in ("PROTO", "FRAME"):
                continue
            else:
                recent = []  # any other op breaks the "two strings right before" pattern
            if name == "STOP":
                break
    return found


def check_pickle_bytes(data: bytes, where: str) -> None:
    try:
        globs = pickle_globals(data)
    except _Unverifiable as e:
        raise UnsafeModelError(f"{where}: refused — its pickle cannot be verified statically ({e})") from None
    except Exception as e:
        raise UnsafeModelError(f"{where}: refused — unreadable pickle ({str(e)[:120]})") from None
    bad = [f"{m}.{n}" for m, n in globs if not _global_ok(m, n)]
    if bad:
        raise UnsafeModelError(
            f"{where}: refused — this pickle would import {', '.join(sorted(set(bad))[:5])}, which can run code; "
            "edgekit never unpickles such files",
            hint="save weights with torch.save(model.state_dict(), path), or export with torch.export.save")


def check_pickle_file(path: Path) -> None:
    """Early static check of a .pt/.pth: the zip format's data.pkl, or a legacy raw pickle stream.
    torch.load(weights_only=True) remains the guard when the file is actually loaded."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.filename.endswith("data.pkl"):  # the only pickle in torch.save's zip format
                        check_pickle_bytes(zf.read(info), f"{path.name}:{info.filename}")
        except zipfile.BadZipFile:
            raise UnsafeModelError(f"{path}: corrupt zip archive; refused") from None
    elif head[:1] == b"\x80":
        check_pickle_bytes(path.read_bytes(), path.name)
    else:
        raise UnsafeModelError(f"{path}: neither a torch archive nor a pickle; refused")


def check_pt2(path: Path) -> None:
    """Refuse a .pt2 whose payload configs would make torch.export.load unpickle anything."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UnsafeModelError(f"{path}: not a zip archive (a .pt2 is one); refused") from None
    with zf:
        names = zf.namelist()
        cfgs = [n for n in names if n.endswith(("_weights_config.json", "_constants_config.json"))]
        if not any("/models/" in n and n.endswith(".json") for n in names) or len(cfgs) < 2:
            raise UnsafeModelError(
                f"{path}: not a torch.export archive in the current layout (payload configs missing); refused",
                hint="re-save it with torch.export.save from torch 2.13")
        for cfg in cfgs:
            try:
                entries = json.loads(zf.read(cfg))["config"]
            except (ValueError, KeyError) as e:
                raise UnsafeModelError(f"{path}:{cfg}: unreadable payload config ({e}); refused") from None
            for fqn, meta in entries.items():
                pn = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
                if not isinstance(meta, dict) or meta.get("use_pickle", True) or not pn.startswith(("weight_", "tensor_")):
                    raise UnsafeModelError(
                        f"{path}: refused — {fqn!r} ({pn or 'no path'}) is stored as a pickle or a custom object, "
                        "which torch.export.load would unpickle and which can run code",
                        hint="export plain tensors only (no custom objects), then torch.export.save")


def check_pt2_sample_inputs(path: Path) -> None:
    """torch.export.load retries sample inputs with weights_only=False when weights-only fails; make
    sure it never has to."""
    import torch

    with zipfile.ZipFile(path) as zf:
        for n in zf.namelist():
            if "/data/sample_inputs/" in n:
                try:
                    torch.load(io.BytesIO(zf.read(n)), weights_only=True)
                except Exception as e:
                    raise UnsafeModelError(f"{path}:{n}: sample inputs do not load weights-only "
                                           f"({str(e).splitlines()[0][:120]}); refused") from None


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

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as e:
        raise ModelSourceError(f"{model_path} is not a readable ONNX model: {str(e).splitlines()[0][:160]}") from None
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
