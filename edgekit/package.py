"""`edgekit package BUNDLE --for android|ios|linux|web --out DIR`: what an app embeds, nothing else.

The package holds the chosen model file(s), `model.json` (tensor names, shapes, dtypes, layout,
normalization, labels, precision, sha256, the file's own quantized I/O) and self-test vectors as
raw little-endian `.bin` files, so an app can prove the model at start-up the way ExecuTorch's
BundledProgram does. `check_model.py` runs that self-test from the files alone (numpy + runtime); a web package has
`edgekit-web.js` instead, an ES module that loads the model with TF.js, self-tests and predicts.
Written like a bundle: staged, `model.json` last, one rename.
"""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from .bundle import BundleWriter, open_bundle, sha256_file
from .errors import UsageError, did_you_mean
from .selftest import selftest_feeds

SCHEMA = "edgekit.app-package/1"
# Which artifact formats each app platform can embed, best first within the bundle's own order.
PLATFORM_FORMATS = {
    "android": ("tflite", "pte", "torchscript"),
    "ios": ("mlpackage", "pte", "tflite", "torchscript"),
    "linux": ("onnx", "tflite", "pte", "torchscript"),
    "web": ("tfjs-graph-model",),
}
TARGET_FOR = {"android": "android", "ios": "ios", "linux": "cpu", "web": "browser"}
# What each package carries besides the models: a self-test runner in the platform's language.
LOADERS = {"web": "edgekit-web.js"}


def choose(manifest, platform: str, ids: list[str] | None = None) -> list:
    """Primary = the first verified artifact the platform can embed: in the bundle's order when the
    bundle was made for this platform (its profile, or on-device timings, ranked them), else in the
    platform's format preference. Fallback = the next one, preferring the same runtime (an app then
    links one runtime library, not two)."""
    formats = PLATFORM_FORMATS[platform]
    usable = [a for a in manifest.usable() if a.format in formats]
    if manifest.target.get("name") != platform:
        usable.sort(key=lambda a: formats.index(a.format))  # stable: bundle order within a format
    if ids:
        by_id = {a.id: a for a in manifest.artifacts}
        for i in ids:
            if i not in by_id:
                raise UsageError(f"no artifact {i!r} in the bundle{did_you_mean(i, list(by_id))}")
            if by_id[i] not in usable:
                raise UsageError(f"artifact {i!r} cannot go into a {platform} package (format {by_id[i].format}, "
                                 f"role {by_id[i].role}); usable here: {[a.id for a in usable] or 'none'}")
        return [by_id[i] for i in ids]
    if not usable:
        raise UsageError(f"the bundle has no verified artifact a {platform} app can embed "
                         f"(formats {', '.join(PLATFORM_FORMATS[platform])}); it has "
                         f"{[(a.id, a.format, a.role) for a in manifest.artifacts]}",
                         hint=f"compile for a target that builds them: --target {TARGET_FOR[platform]}")
    primary = usable[0]
    rest = [a for a in usable[1:] if a.runtime == primary.runtime] or usable[1:]
    return [primary] + rest[:1]


def _write_tensor(writer: BundleWriter, rel: str, a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    a.astype(a.dtype.newbyteorder("<")).tofile(writer.path(rel))
    return {"file": rel, "shape": list(a.shape), "dtype": a.dtype.name}


def package_bundle(bundle: str, platform: str, out: str, ids: list[str] | None = None) -> Path:
    if platform not in PLATFORM_FORMATS:
        raise UsageError(f"unknown platform {platform!r}{did_you_mean(platform, list(PLATFORM_FORMATS))}")
    manifest = open_bundle(bundle)  # complete and intact, or a clear BundleError
    chosen = choose(manifest, platform, ids)
    foreign = [a.id for a in chosen if a.model]
    if foreign:  # a fallback *model* has other reference vectors; one package = one model's vectors
        raise UsageError(f"{foreign} belong to a different model (--fallback-model); package them on their own")
    writer = BundleWriter(Path(out), marker="model.json", what="an edgekit app package", schema=SCHEMA)
    try:
        return _write_package(writer, bundle, platform, manifest, chosen)
    except BaseException:
        writer.discard()  # a package has no logs worth keeping: a failed one leaves nothing behind
        raise


def _carry_signature(writer: BundleWriter, bundle: Path, manifest) -> dict | None:
    """A signed bundle's manifest and signature travel with the package (bundle/), so an app can check
    them with the signer's public key (check_model.py --trusted-key): the signed manifest lists each
    model file's sha256. The self-test .bin files are re-encodings and not covered by it."""
    from .manifest import MANIFEST
    from .signing import SIGNATURE, read_signature

    if not (bundle / SIGNATURE).is_file():
        return None
    sig = read_signature(bundle / SIGNATURE)  # well formed, or a clear error; trust is the app's to decide
    shutil.copyfile(bundle / MANIFEST, writer.path(f"bundle/{MANIFEST}"))
    shutil.copyfile(bundle / SIGNATURE, writer.path(f"bundle/{SIGNATURE}"))
    return {"manifest": f"bundle/{MANIFEST}", "signature": f"bundle/{SIGNATURE}", "key_id": sig["key_id"],
            "algorithm": "ed25519", "covers": "bundle/manifest.json, which lists every model file's sha256"}


def _file_part(name: str) -> str:
    """A tensor name as part of a file name: tensor names come from the user's model and are never
    trusted as paths (`../..` once wrote outside the package); the index keeps two names apart."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".")[:48] or "t"


def _write_package(writer: BundleWriter, bundle: str, platform: str, manifest, chosen) -> Path:
    m = manifest.model
    inputs, refs = selftest_feeds(bundle, manifest)
    vectors = [{"inputs": {n: _write_tensor(writer, f"selftest/{i}-in{k}-{_file_part(n)}.bin", x[n])
                           for k, n in enumerate(x)},
                "expected": {n: _write_tensor(writer, f"selftest/{i}-out{k}-{_file_part(n)}.bin", r[n])
                             for k, n in enumerate(r)}}
               for i, (x, r) in enumerate(zip(inputs, refs))]
    models = []
    for role, a in zip(["primary"] + ["fallback"] * (len(chosen) - 1), chosen):
        rel = f"models/{a.id}{Path(a.path).suffix}"
        src = Path(bundle) / a.path
        shutil.copytree(src, writer.path(rel)) if src.is_dir() else shutil.copyfile(src, writer.path(rel))
        layout = {t.name: (a.input_layout or {}).get(t.name, m.get("preprocessing", {}).get("layout", "as given")
                                                      if len(t.shape) == 4 else "-") for t in a.inputs}
        models.append({
            "id": a.id, "role": role, "file": rel, "format": a.format, "runtime": a.runtime, "precision": a.precision,
            # a.sha256: open_bundle checked the file against it, so the copy need not be hashed again
            "sha256": a.sha256, "size_bytes": a.size_bytes, "input_layout": layout,
            "io": a.converter.get("artifact_io"), "tolerance": a.verification.tolerance,
            "verified": {"status": a.verification.status, "where": a.verification.where,
                         "samples": a.verification.samples, "accuracy": a.verification.accuracy,
                         "metrics": a.verification.metrics},
            "quantization": a.converter.get("quantization"), "toolchain": a.toolchain,
        })
    pkg = {
        "schema": SCHEMA, "platform": platform, "edgekit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bundle": {"path": str(Path(bundle).resolve()), "manifest_sha256": sha256_file(Path(bundle) / "manifest.json")},
        "model": {"name": m["name"], "sha256": m["sha256"], "task": m.get("task"), "labels": m.get("labels")},
        "preprocessing": m.get("preprocessing"),
        "inputs": [{**t, "layout": m.get("preprocessing", {}).get("layout") if len(t["shape"]) == 4 else None}
                   for t in m["inputs"]],
        "outputs": m["outputs"],
        "models": models,
        "selftest": {"samples": len(vectors), "reference": m["reference"],
                     "note": "vectors are in the model's own layout and float values; see models[].input_layout "
                             "and models[].io for what each file takes", "vectors": vectors},
    }
    pkg["signature"] = _carry_signature(writer, Path(bundle), manifest)
    loader = LOADERS.get(platform, "check_model.py")
    shutil.copyfile(Path(__file__).parent / "app" / loader, writer.path(loader))
    return writer.publish(json.dumps(pkg, indent=2))
