"""Write bundles atomically and open them only when they are complete and intact.

Writing: everything goes into a staging folder beside the destination (`OUT.partial`); the
manifest is written last (temp file + fsync + rename) with `complete: true`; then the staging
folder is renamed onto OUT. A crash at any point leaves either the previous bundle, no bundle,
or a `.partial` folder that `open_bundle` refuses — never a bundle that looks complete.

Reading: `open_bundle` checks the schema, the completion flag, and every listed file's size and
sha256 against the manifest before anything runs it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from .errors import BundleError, UsageError
from .manifest import MANIFEST, SCHEMA, Manifest

PARTIAL_SUFFIX = ".partial"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file; of a folder artifact (a Core ML .mlpackage, a TF.js model folder), the
    sha256 of its sorted "relative path NUL file sha256" lines, so renaming, adding or changing any
    file inside changes it. Links are refused: a bundle never points outside itself."""
    path = Path(path)
    if path.is_dir():
        lines = []
        for f in sorted(_tree_files(path)):
            lines.append(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n")
        return hashlib.sha256("".join(lines).encode()).hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _tree_files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            if (Path(dirpath) / name).is_symlink():
                raise BundleError(f"{root.name}: {Path(dirpath, name).relative_to(root)} is a link; refused")
        out += [Path(dirpath) / n for n in files]
    return out


def size_bytes(path: Path) -> int:
    """Bytes on disk of an artifact file, or of every file in a folder artifact."""
    path = Path(path)
    return sum(f.stat().st_size for f in _tree_files(path)) if path.is_dir() else path.stat().st_size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def _crash_point(name: str) -> None:
    """Fault injection for the atomicity tests: EDGEKIT_TEST_CRASH_AT=NAME kills the process here."""
    if os.environ.get("EDGEKIT_TEST_CRASH_AT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def check_out_dir(out: Path, marker: str = MANIFEST, what: str = "an edgekit bundle") -> None:
    """--out may name a new folder, an empty one, or an existing bundle (replaced) — never anything else."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / marker).is_file())):
        raise UsageError(f"--out {out} exists and is not {what}; refusing to replace it",
                         hint="choose a new folder, e.g. --out build/my-model-cpu")


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename: readers see the old file or the new, never half."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


class BundleWriter:
    """Stage a bundle in OUT.partial and publish it onto OUT in one rename. `marker` is the file
    written last (manifest.json for bundles, model.json for app packages)."""

    def __init__(self, out: Path, marker: str = MANIFEST, what: str = "an edgekit bundle"):
        check_out_dir(out, marker, what)
        self.marker = marker
        self.out = Path(out).resolve()
        self.stage = self.out.with_name(self.out.name + PARTIAL_SUFFIX)
        if self.stage.exists():  # left by an interrupted run; it never claimed to be complete
            shutil.rmtree(self.stage)
        self.stage.mkdir(parents=True)

    def path(self, rel: str) -> Path:
        p = self.stage / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def publish(self, manifest: Manifest | str) -> Path:
        if isinstance(manifest, Manifest):
            manifest.complete = True
            manifest = manifest.to_json()
        _fsync_tree(self.stage)
        _crash_point("before-manifest")
        write_atomically(self.stage / self.marker, manifest)
        _crash_point("before-rename")
        old = None
        if self.out.exists():
            # Two renames: if we die between them, OUT is absent and the old bundle sits in
            # OUT.old-*, still complete; nothing half-written is ever at OUT.
            old = self.out.with_name(f"{self.out.name}.old-{os.getpid()}-{int(time.time())}")
            os.rename(self.out, old)
            _crash_point("between-renames")
        os.rename(self.stage, self.out)
        _fsync_dir(self.out.parent)
        for stale in self.out.parent.glob(f"{self.out.name}.old-*"):  # this one, and any a crash left
            shutil.rmtree(stale, ignore_errors=True)
        return self.out

    def abandon(self) -> Path:
        """Leave the staging folder (with its logs) for the user to inspect; it never loads."""
        return self.stage


def check_listed_file(root: Path, ident: str, rel: str, sha256: str, size: int, check_hash: bool = True) -> Path:
    """The file a manifest lists, inside the bundle, of the listed size and (check_hash) sha256;
    else BundleError saying which. Every reader of a bundle file goes through here."""
    root = Path(root).resolve()
    p = (root / rel).resolve()
    if root not in p.parents:
        raise BundleError(f"{ident}: path {rel!r} points outside the bundle; refused")
    if not (p.is_file() or p.is_dir()):
        raise BundleError(f"{ident}: file {rel} listed in the manifest is missing")
    if size_bytes(p) != size:
        raise BundleError(f"{ident}: {rel} is {size_bytes(p)} bytes, manifest says {size}")
    if check_hash and sha256_file(p) != sha256:
        raise BundleError(f"{ident}: {rel} does not match its sha256 in the manifest (corrupted or modified)")
    return p


def open_bundle(bundle_dir, check_hashes: bool = True, check_files: bool = True) -> Manifest:
    """Return the manifest of a complete, intact bundle, or raise BundleError saying what is wrong.

    check_files=False checks only the manifest: the fallback predictor checks each artifact itself
    when it activates it, so one damaged file costs that artifact, not the whole bundle."""
    d = Path(bundle_dir)
    if d.name.endswith(PARTIAL_SUFFIX):
        raise BundleError(f"{d} is an unfinished compile (a '{PARTIAL_SUFFIX}' staging folder), not a bundle",
                          hint="run the compile again; its logs/ folder says where it stopped")
    mpath = d / MANIFEST
    if not d.is_dir():
        olds = sorted(d.parent.glob(f"{d.name}.old-*"))
        if olds:
            raise BundleError(f"no bundle at {d}: a compile was interrupted while replacing it; the previous "
                              f"complete bundle is at {olds[-1]}", hint=f"mv {olds[-1]} {d}")
        raise BundleError(f"no bundle at {d}: folder not found")
    if not mpath.is_file():
        raise BundleError(f"{d} is not a bundle: {MANIFEST} is missing")
    try:
        import json

        raw = json.loads(mpath.read_text())
        manifest = Manifest.from_dict(raw)
    except (ValueError, TypeError, KeyError) as e:
        raise BundleError(f"{mpath} is not a valid edgekit manifest: {e}") from None
    if manifest.schema != SCHEMA:
        raise BundleError(f"{mpath} has schema {manifest.schema!r}; this edgekit reads {SCHEMA!r}")
    if not manifest.complete:
        raise BundleError(f"{d} is incomplete (its manifest was never marked complete)")
    files = [(a.id, a.path, a.sha256, a.size_bytes) for a in manifest.artifacts]
    files += [(f"{a.id} self-test", a.selftest["path"], a.selftest["sha256"], a.selftest["size_bytes"])
              for a in manifest.artifacts if a.selftest]
    if manifest.selftest:
        st = manifest.selftest
        try:
            files.append(("selftest", st["path"], st["sha256"], st["size_bytes"]))
        except (KeyError, TypeError):
            raise BundleError(f"{mpath}: malformed selftest entry") from None
    for ident, rel, sha, size in files if check_files else []:
        check_listed_file(d, ident, rel, sha, size, check_hashes)
    return manifest
