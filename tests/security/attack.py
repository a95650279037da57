"""Shared pieces of the adversarial suite: real payloads, files built in code, and a check that
nothing outside the intended output changed.

A payload is a pickle whose __reduce__ runs `touch MARKER` through os.system when unpickled: if
any loader ever runs it, the marker file appears, and every test asserts it never does.
"""
from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path


class Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def torch_save_payload(marker: Path) -> bytes:
    """torch.save of the payload: the bytes a legacy weights member or sample-inputs member holds."""
    import torch

    buf = io.BytesIO()
    torch.save(Payload(marker), buf)
    return buf.getvalue()


def good_pt2(path: Path) -> Path:
    import torch

    torch.export.save(torch.export.export(torch.nn.Linear(2, 2).eval(), (torch.randn(1, 2),)), str(path))
    return path


def rebuild_zip(src: Path, dst: Path, first=(), replace=None, last=(), drop=()) -> Path:
    """Copy a zip member by member: `first` entries before, `last` after, `replace(rel, data)` on each,
    members named in `drop` left out.
    Names in first/last are relative to the archive's top folder; a name starting with "/" is put at
    the zip's root instead (without the slash)."""
    import warnings

    with zipfile.ZipFile(src) as zs:
        top = zs.namelist()[0].split("/", 1)[0]

        def full(rel: str) -> str:
            return rel[1:] if rel.startswith("/") else f"{top}/{rel}"

        with zipfile.ZipFile(dst, "w") as zd, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name": on purpose
            for rel, data in first:
                zd.writestr(full(rel), data)
            for info in zs.infolist():
                rel = info.filename.split("/", 1)[1]
                if rel in drop:
                    continue
                data = zs.read(info)
                zd.writestr(info.filename, replace(rel, data) if replace else data)
            for rel, data in last:
                zd.writestr(full(rel), data)
    return dst


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file and folder under root (relative path -> size, mtime) except those under `skip`."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            st = p.lstat()
            out[rel] = (st.st_size if not p.is_dir() else 0, st.st_mtime_ns if not p.is_dir() else 0)
    return out


def edgekit_cli(*args, cwd=None, env=None, prefix=(), timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                          timeout=timeout)


def one_line_error(p: subprocess.CompletedProcess, code: int) -> str:
    """The process failed with `code`, saying so on stderr as edgekit does: no traceback."""
    assert p.returncode == code, (p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    assert "Traceback" not in p.stderr, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("edgekit: error: ")]
    assert len(errors) == 1, p.stderr
    return errors[0]
