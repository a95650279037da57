"""A toy format from outside edgekit, to show a new format is one converter file + one runtime file
(+ their names in EDGEKIT_PLUGINS): `.toyz` is the model's ONNX export, gzip-compressed. Real work,
nothing mocked: the export is edgekit's, the file is read back by toyz_runtime.py on ONNX Runtime."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from edgekit.converters import ConvertResult, Converter


def convert(work, candidate, out_path: Path) -> ConvertResult:
    if candidate.precision != "fp32":
        raise ValueError(f"the toyz converter builds fp32 only, not {candidate.precision}")
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(work.onnx_path, "rb") as src, gzip.open(tmp, "wb", compresslevel=9) as dst:
        shutil.copyfileobj(src, dst)
    tmp.replace(out_path)  # atomically: a crash never leaves half a file at out_path
    raw = Path(work.onnx_path).stat().st_size
    return ConvertResult({"name": "toyz", "compression": "gzip", "onnx_bytes": raw,
                          "ratio": round(out_path.stat().st_size / raw, 3)})


def preflight(ctx) -> dict:
    """Whatever ONNX Runtime runs, this format runs: the export itself is the only thing to check."""
    if ctx.onnx_error:
        return ctx.failed_before("ONNX export (torch.onnx.export, dynamo)", ctx.onnx_error)
    return ctx.verdict([], table="toyz: the ONNX export, compressed (ONNX Runtime's kernels decide)")


CONVERTER = Converter(name="toyz", format="toyz", suffix=".toyz", toolchains=("onnx", "onnxruntime"),
                      convert=convert, preflight=preflight, needs_onnx=True)
