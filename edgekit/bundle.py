"""Write bundles atomically and open them only when they are complete and intact.

Writing: everything goes into a staging folder beside the destination (`OUT.partial`); the
manifest is written last (temp file + fsync + rename) with `complete: true`; then the staging
folder is renamed onto OUT. A crash at any point leaves either the previous bundle, no bundle,
or a `.partial` folder that `open_bundle` refuses — never a bundle that looks complete.

Reading: `open_bundle` checks the schema, the completion flag, and every listed file's size and
sha256 against the manifest before anything runs it.
"""
from __future__ import annotations

import glob
import hashlib
import json
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


def check_out_dir(out: Path, marker: str = MANIFEST, what: str = "an edgekit bundle", schema: str = SCHEMA) -> None:
    """--out may name a new folder, an empty one, or an existing edgekit bundle (replaced) — never
    anything else. A bundle is a folder whose `marker` file is a JSON object with edgekit's schema:
    a web app's own manifest.json or model.json does not make its folder replaceable."""
    out = Path(out)
    if out.is_symlink():
        raise UsageError(f"--out {out} is a symbolic link; refusing to replace what it points at",
                         hint="name the real folder, or a new one")
    if not out.exists():
        return
    if not out.is_dir() or (any(out.iterdir()) and not is_edgekit_manifest(out / marker, schema)):
        raise UsageError(f"--out {out} exists and is not {what}; refusing to replace it",
                         hint="choose a new folder, e.g. --out build/my-model-cpu")


class OutLock:
    """An exclusive lock on OUT (an `OUT.edgekit.lock` file beside it, flock'ed), held from the first check of
    --out to the publish: a second compile or package to the same OUT fails at once, clearly,
    instead of sharing files with the first. The kernel drops the lock when the holder dies."""

    def __init__(self, out: Path):
        self.path = out.with_name(out.name + ".edgekit.lock")
        self.fd = None
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self._acquire(out)
        except OSError as e:  # a read-only or missing parent: say so before any work
            raise UsageError(f"--out {out}: cannot write there ({e.strerror or e})",
                             hint="choose a folder you can write to") from None

    def _acquire(self, out: Path) -> None:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                os.close(fd)
                raise UsageError(f"--out {out} is being written by another edgekit run (pid {holder or '?'}); "
                                 "refusing to share it", hint="wait for that run, or choose another --out") from None
            # The file may have been unlinked by the previous holder between our open and flock: a
            # lock on an unlinked file guards nothing, so retry on the file now at the path.
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlink first, while still holding the lock
        finally:
            os.close(self.fd)
            self.fd = None


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename: readers see the old file or the new, never half."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


def manifest_json(manifest: Manifest) -> str:
    """manifest.json's text; checked against docs/reference/manifest.schema.json first when
    EDGEKIT_VALIDATE_MANIFESTS=1 (the tests set it, so every manifest any test writes is checked)."""
    text = manifest.to_json()
    if os.environ.get("EDGEKIT_VALIDATE_MANIFESTS") == "1":
        from .manifest_schema import validate

        validate(json.loads(text))
    return text


class BundleWriter:
    """Stage a bundle in a staging folder of its own (`OUT.<pid>-<random>.partial`) and publish it
    onto OUT in one rename, holding OUT's lock throughout. `marker` is the file written last
    (manifest.json for bundles, model.json for app packages); `schema` is what it must say for an
    existing OUT to be replaceable. Removes only what this run created: its own staging folder and
    the previous bundle it moved aside."""

    def __init__(self, out: Path, marker: str = MANIFEST, what: str = "an edgekit bundle", schema: str = SCHEMA):
        import secrets

        self.marker, self.what, self.schema = marker, what, schema
        self.out = Path(out).absolute()
        self.lock = OutLock(self.out)
        try:
            check_out_dir(self.out, marker, what, schema)  # again, now that OUT is ours
            self.stage = self.out.with_name(f"{self.out.name}.{os.getpid()}-{secrets.token_hex(3)}{PARTIAL_SUFFIX}")
            self.stage.mkdir(parents=True)
        except BaseException:
            self.lock.release()
            raise
        # What interrupted runs left beside OUT (staging folders, a bundle moved aside): named to the
        # user, never removed: this run removes only what it made.
        esc = glob.escape(self.out.name)
        self.leftovers = sorted(p for p in [*self.out.parent.glob(f"{esc}.*{PARTIAL_SUFFIX}"),
                                            *self.out.parent.glob(f"{esc}.old-*")] if p != self.stage)

    def path(self, rel: str) -> Path:
        p = self.stage / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def publish(self, manifest: Manifest | str) -> Path:
        if isinstance(manifest, Manifest):
            manifest.complete = True
            manifest = manifest_json(manifest)
        try:
            _fsync_tree(self.stage)
            _crash_point("before-manifest")
            write_atomically(self.stage / self.marker, manifest)
            _crash_point("before-rename")
            # The folder at OUT now may differ from the one checked at the start (created meanwhile):
            # check again, under the lock, right before replacing it.
            try:
                check_out_dir(self.out, self.marker, self.what, self.schema)
            except UsageError as e:
                raise UsageError(f"{e.message} (it appeared while this run was working)",
                                 hint=f"the finished result is in {self.stage}; move it where you want it") from None
            old = None
            if self.out.exists():
                # Two renames: if we die between them, OUT is absent and the old bundle sits in
                # OUT.old-*, still complete; nothing half-written is ever at OUT.
                old = self.out.with_name(f"{self.out.name}.old-{os.getpid()}-{int(time.time())}")
                os.rename(self.out, old)
                _crash_point("between-renames")
            os.rename(self.stage, self.out)
            _fsync_dir(self.out.parent)
            if old is not None:  # ours: the bundle this run replaced; nothing else is touched
                shutil.rmtree(old, ignore_errors=True)
        finally:
            self.lock.release()
        return self.out

    def abandon(self) -> Path:
        """Leave the staging folder (with its logs) for the user to inspect; it never loads."""
        self.lock.release()
        return self.stage

    def discard(self) -> None:
        """Remove this run's staging folder (a usage error: nothing in it worth keeping) and unlock."""
        shutil.rmtree(self.stage, ignore_errors=True)
        self.lock.release()


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


MAX_MANIFEST_BYTES = 32 << 20  # a real manifest is tens of KB; a bigger one is refused unread


class _TooLarge(ValueError):
    pass


def _bounded_json(path: Path):
    """A JSON file's value, refusing one over MAX_MANIFEST_BYTES unread (_TooLarge) and nesting
    deeper than the parser's stack (RecursionError); OSError when it cannot be read."""
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise _TooLarge(f"{path} is {path.stat().st_size} bytes, over the {MAX_MANIFEST_BYTES >> 20} MiB a manifest "
                        "may have; refused unread")
    return json.loads(path.read_bytes())


def read_manifest(mpath: Path) -> Manifest:
    """Parse and check a manifest file: size-bounded, schema first, every name checked (ManifestError),
    nesting bounded (RecursionError) — a malformed one is a one-line BundleError, never a traceback."""
    mpath = Path(mpath)
    try:
        raw = _bounded_json(mpath)
    except _TooLarge as e:
        raise BundleError(str(e)) from None
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{mpath} is not valid JSON: {type(e).__name__}: {str(e)[:160]}") from None
    except OSError as e:
        raise BundleError(f"cannot read {mpath}: {e.strerror or e}") from None
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
        raise BundleError(f"{mpath} is not an edgekit bundle manifest (schema {found!r}; this edgekit reads "
                          f"{SCHEMA!r})")
    try:
        return Manifest.from_dict(raw)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        raise BundleError(f"{mpath} is not a valid edgekit manifest: {type(e).__name__}: {str(e)[:200]}") from None


def is_edgekit_manifest(path: Path, schema: str = SCHEMA) -> bool:
    """True when `path` is a JSON object whose schema is edgekit's: the only marker that lets --out
    replace an existing folder."""
    try:
        raw = _bounded_json(path) if path.is_file() else None
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and raw.get("schema") == schema


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
        olds = sorted(d.parent.glob(f"{glob.escape(d.name)}.old-*"))
        if olds:
            raise BundleError(f"no bundle at {d}: a compile was interrupted while replacing it; the previous "
                              f"complete bundle is at {olds[-1]}", hint=f"mv {olds[-1]} {d}")
        raise BundleError(f"no bundle at {d}: folder not found")
    if not mpath.is_file():
        raise BundleError(f"{d} is not a bundle: {MANIFEST} is missing")
    manifest = read_manifest(mpath)
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
