"""Refuse model files that would run code or read outside their folder — before anything loads them.

- `.pt`/`.pth` state dicts load only through `torch.load(weights_only=True)` (torch's restricted
  unpickler: the guard). A static scan of their `data.pkl` runs first in the parent, only so the
  refusal comes before any work starts.
- `.pt2` archives: `torch.export.load` unpickles a member with `weights_only=False` (or
  `pickle.loads`) when its payload config says `use_pickle`, for custom/opaque objects, for a
  legacy `data/weights/<model>.pt` / `data/constants/<model>.pt`, for pre-2.9 archives it falls
  back to, and for sample inputs that fail to load weights-only. So a member is accepted only if
  its name is on an allow-list of what the current format holds, names are unique (zip readers
  disagree on duplicates), the payload configs unpickle nothing, and the sample inputs' pickle
  imports only tensor rebuilders. `check_pt2` does this with Python's zipfile (no torch); the
  loader repeats it on the bytes torch's own reader returns (`check_pt2_with_torch_reader`) and
  loads the sample inputs weights-only first, so torch never falls back.
- `.onnx` external-data locations, of every tensor (sparse ones and those in subgraphs and
  functions too), must stay inside the model's folder (no absolute paths, no `..`, no symlinks
  that lead out, no control characters, offsets within the file); declared input sizes are bounded.
"""
from __future__ import annotations

import io
import json
import pickletools
import re
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


# Every member a torch.export archive (torch 2.13's torch.export.save) may hold, relative to its top
# folder. Anything else is refused, because torch.export.load unpickles some other members with
# weights_only=False: a legacy `data/weights/<model>.pt` or `data/constants/<model>.pt`, custom and
# opaque objects, AOTInductor payloads, and the pre-2.9 layout's `serialized_*.pt` it falls back to.
_PT2_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
_PT2_ALLOWED = re.compile(r"(?:models/[A-Za-z0-9_]{1,64}\.json"
                          r"|data/weights/[A-Za-z0-9_]{1,64}_weights_config\.json"
                          r"|data/constants/[A-Za-z0-9_]{1,64}_constants_config\.json"
                          r"|data/weights/weight_[0-9]{1,9}|data/constants/tensor_[0-9]{1,9}"
                          r"|data/sample_inputs/[A-Za-z0-9_]{1,64}\.pt|extra/[A-Za-z0-9_.-]{1,128})")
_PT2_REFUSE_HINT = "re-save it with torch.export.save from torch 2.13, exporting plain tensors only (no custom objects)"


def _pt2_members(path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name relative to its one top folder, read by Python's zipfile;
    refused unless every name is plain, unique and allowed (see _PT2_ALLOWED)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UnsafeModelError(f"{path}: not a zip archive (a .pt2 is one): {e}; refused") from None
    with zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UnsafeModelError(f"{path}: refused — the archive holds two members named {dup!r}; zip readers "
                               "disagree on which one counts (Python reads the last, torch the first), so what a "
                               "scan reads need not be what torch loads", hint=_PT2_REFUSE_HINT)
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1 or any("/" not in n for n in names):
        raise UnsafeModelError(f"{path}: not a torch.export archive (members outside one top folder: "
                               f"{sorted(tops)[:4]}); refused", hint=_PT2_REFUSE_HINT)
    members = {}
    for info in infos:
        rel = info.filename.split("/", 1)[1]
        if rel.endswith("/") and info.file_size == 0:  # a folder entry
            continue
        if rel not in _PT2_FIXED and not _PT2_ALLOWED.fullmatch(rel):
            raise UnsafeModelError(
                f"{path}: refused — member {rel[:120]!r} is not part of a torch.export archive edgekit can load "
                "without unpickling (legacy weight/constant pickles, custom objects, AOTInductor and pre-2.9 "
                "members are all loaded with code-running pickle)", hint=_PT2_REFUSE_HINT)
        members[rel] = info
    return members


def _check_pt2_configs(path: Path, models: list[str], read) -> None:
    """Each model's payload configs (read through `read(rel)`) list only raw tensors, no pickles."""
    if "model" not in models:
        raise UnsafeModelError(f"{path}: not a torch.export archive in the current layout (models/model.json "
                               "missing); refused", hint=_PT2_REFUSE_HINT)
    for model in models:
        for kind, prefix, base in (("weights", "weight_", "data/weights/"), ("constants", "tensor_", "data/constants/")):
            cfg = f"{base}{model}_{kind}_config.json"
            try:
                entries = json.loads(read(cfg))["config"]
                items = entries.items()
            except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as e:
                raise UnsafeModelError(f"{path}:{cfg}: missing or unreadable payload config "
                                       f"({type(e).__name__}); refused", hint=_PT2_REFUSE_HINT) from None
            for fqn, meta in items:
                pn = meta.get("path_name") if isinstance(meta, dict) else None
                if (not isinstance(meta, dict) or meta.get("use_pickle", True) is not False
                        or not isinstance(pn, str) or not re.fullmatch(prefix + r"[0-9]{1,9}", pn)):
                    raise UnsafeModelError(
                        f"{path}: refused — {str(fqn)[:80]!r} ({str(pn)[:40] if pn else 'no path'}) is stored as a "
                        "pickle or a custom object, which torch.export.load would unpickle and which can run code",
                        hint=_PT2_REFUSE_HINT)


def check_pt2(path: Path) -> None:
    """Static check of a .pt2 with Python's zipfile (no torch, nothing executed): plain unique member
    names from the allow-list, payload configs that unpickle nothing, sample inputs whose pickle
    imports only tensor rebuilders. load_pt2 repeats it on the bytes torch's own reader returns."""
    members = _pt2_members(path)
    with zipfile.ZipFile(path) as zf:
        top = zf.namelist()[0].split("/", 1)[0]

        def read(rel: str) -> bytes:
            if rel not in members:
                raise KeyError(rel)
            return zf.read(f"{top}/{rel}")

        _check_members(path, list(members), read)


def _check_members(path: Path, rels: list[str], read) -> None:
    _check_pt2_configs(path, sorted(r[len("models/"):-len(".json")] for r in rels if r.startswith("models/")), read)
    for r in rels:
        if r.startswith("data/sample_inputs/"):
            check_torch_save_bytes(read(r), f"{path.name}:{r}")


def check_torch_save_bytes(data: bytes, where: str) -> None:
    """The pickle(s) of a torch.save payload (zip format or a raw pickle stream) import only tensor
    rebuilders."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()
                if len(set(names)) != len(names):
                    raise UnsafeModelError(f"{where}: refused — duplicate member names inside")
                pkls = [n for n in names if n.endswith(".pkl")]
                if not pkls:
                    raise UnsafeModelError(f"{where}: refused — a torch.save archive without its data.pkl")
                for n in pkls:
                    check_pickle_bytes(zf.read(n), f"{where}:{n}")
        except zipfile.BadZipFile:
            raise UnsafeModelError(f"{where}: corrupt zip archive; refused") from None
    else:
        check_pickle_bytes(data, where)


def check_pt2_with_torch_reader(path: Path) -> None:
    """Repeat the check on exactly what torch.export.load will read: the member list and bytes of
    torch's own zip reader (PyTorchFileReader), which must agree with Python's zipfile; then the
    sample inputs must load weights-only, so torch never retries them with weights_only=False."""
    import torch

    members = _pt2_members(path)
    try:
        reader = torch._C.PyTorchFileReader(str(path))
        records = reader.get_all_records()
    except Exception as e:
        raise UnsafeModelError(f"{path}: torch cannot read the archive ({str(e).splitlines()[0][:120]}); refused") from None
    if sorted(records) != sorted(set(records)) or set(records) - {".data/"} != set(members) - {".data/"}:
        only_torch = sorted(set(records) - set(members))[:3]
        only_zip = sorted(set(members) - set(records))[:3]
        raise UnsafeModelError(f"{path}: refused — torch's zip reader and Python's see different members "
                               f"(only torch: {only_torch}, only Python: {only_zip}), so no scan can vouch for "
                               "what torch would load", hint=_PT2_REFUSE_HINT)

    def read(rel: str) -> bytes:
        if rel not in members:
            raise KeyError(rel)
        return reader.get_record(rel)

    _check_members(path, list(members), read)
    for r in members:
        if r.startswith("data/sample_inputs/"):
            try:
                torch.load(io.BytesIO(read(r)), weights_only=True)
            except Exception as e:
                raise UnsafeModelError(f"{path}:{r}: sample inputs do not load weights-only "
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


# Largest input (elements per sample) a source model may declare. A sample is allocated many times
# over (reference outputs, 16+ verification samples, calibration): 3e8 elements once took ~20 GB
# before failing. 2**26 float32 elements = 256 MiB per sample, far above any edge model's input.
MAX_INPUT_ELEMENTS = 1 << 26


def _onnx_tensors(model):
    """Every TensorProto a loader may read data for: initializers, sparse initializers (values and
    indices), node attributes (tensor, tensors, sparse tensors) in the main graph, every subgraph
    (If/Loop/Scan bodies) and every local function."""
    def graph_nodes(g):
        yield from _tensors_of_nodes(g.node)
        for t in g.initializer:
            yield t
        for sp in g.sparse_initializer:
            yield sp.values
            yield sp.indices

    def _tensors_of_nodes(nodes):
        for n in nodes:
            for a in n.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("sparse_tensor"):
                    yield a.sparse_tensor.values
                    yield a.sparse_tensor.indices
                for sp in a.sparse_tensors:
                    yield sp.values
                    yield sp.indices
                if a.HasField("g"):
                    yield from graph_nodes(a.g)
                for sub in a.graphs:
                    yield from graph_nodes(sub)

    yield from graph_nodes(model.graph)
    for f in model.functions:
        yield from _tensors_of_nodes(f.node)


def check_onnx_file(model_path: Path):
    """Refuse an ONNX file whose external data escapes its folder (any tensor, sparse or in a
    subgraph) or whose declared inputs are absurdly large — before anything allocates or reads them.
    Returns the parsed model (external data not loaded), so callers need not parse it again."""
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as e:
        raise ModelSourceError(f"{model_path} is not a readable ONNX model: {str(e).splitlines()[0][:160]}") from None
    root = model_path.parent.resolve()
    for t in _onnx_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        if not loc or any(ord(c) < 32 for c in loc) or "\\" in loc:
            raise UnsafeModelError(f"{model_path}: tensor {t.name[:80]!r} has an external-data location "
                                   f"{loc[:80]!r} that is empty or holds control characters; refused")
        target = (root / loc).resolve()
        if Path(loc).is_absolute() or root not in target.parents:
            raise UnsafeModelError(
                f"{model_path}: tensor {t.name[:80]!r} points its external data at {loc[:120]!r}, outside the model's "
                "folder; refused (a model file must not read other files on this machine)")
        if not target.is_file():
            raise UnsafeModelError(f"{model_path}: external data file {loc[:120]!r} for tensor {t.name[:80]!r} is missing")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", 0))
        except ValueError:
            raise UnsafeModelError(f"{model_path}: tensor {t.name[:80]!r} has a non-numeric external-data offset "
                                   "or length; refused") from None
        if offset < 0 or length < 0 or offset + length > target.stat().st_size:
            raise UnsafeModelError(f"{model_path}: tensor {t.name[:80]!r} reads bytes {offset}..{offset + length} of "
                                   f"{loc[:120]!r}, which has {target.stat().st_size}; refused")
    check_onnx_inputs(model, model_path)
    return model


def check_onnx_inputs(model, model_path: Path) -> None:
    """Declared input sizes are bounded (a dynamic or non-positive dimension counts as 1, as the
    loader will use it)."""
    inits = {i.name for i in model.graph.initializer}
    for i in model.graph.input:
        if i.name in inits:
            continue
        n = 1
        for d in i.type.tensor_type.shape.dim:
            n *= d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
        if n > MAX_INPUT_ELEMENTS:
            raise ModelSourceError(
                f"{model_path}: input {i.name[:80]!r} declares {n:,} elements per sample, over the "
                f"{MAX_INPUT_ELEMENTS:,} edgekit allows (it would allocate many copies of it); refused before "
                "allocating anything", hint="export the model with the input shape it runs with on the device")
