#!/usr/bin/env python3
"""Self-test an edgekit app package from its files alone: numpy + the model's runtime, no edgekit.

    python check_model.py [PACKAGE_DIR] [--model ID] [--trusted-key SIGNER.pub]

For each model file listed in model.json (or the one named): check its sha256, load it on its
runtime, feed the self-test vectors and compare with the expected outputs using the tolerance the
model was verified with. Exit 0 when every checked model passes, 1 otherwise. This file is also the
reference for what an app does at start-up (see the Kotlin example in docs/packaging.md): the vectors are in
the model's own layout and float values; `input_layout` says which inputs the file takes NHWC and
`io` gives the file's tensor types and quantization (q = round(x / scale) + zero_point).

With --trusted-key (needs `cryptography`), the package must carry its bundle's ed25519 signature
by that key (edgekit sign), and every model file must match the sha256 the signed manifest lists.
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_tensor(root, t):
    return np.fromfile(root / t["file"], dtype=np.dtype(t["dtype"]).newbyteorder("<")).reshape(t["shape"])


def to_file_layout(model, feeds):
    nhwc = [n for n, v in (model.get("input_layout") or {}).items() if v == "NHWC"]
    return {n: (a.transpose(0, 2, 3, 1) if n in nhwc else a) for n, a in feeds.items()}


def run_litert(path, model, feeds):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path), num_threads=1).get_signature_runner(model["io"]["signature"])
    args = {}
    for t in model["io"]["inputs"]:
        x, q = feeds[t["name"]], t["quantization"]
        if q:  # quantized input tensor
            info = np.iinfo(t["dtype"])
            x = np.clip(np.round(x / q["scale"]) + q["zero_point"], info.min, info.max)
        args[t["tflite_signature_key"]] = np.ascontiguousarray(x.astype(t["dtype"]))
    out = runner(**args)
    res = {}
    for t in model["io"]["outputs"]:
        y, q = np.asarray(out[t["tflite_signature_key"]]), t["quantization"]
        res[t["name"]] = (y.astype(np.float32) - q["zero_point"]) * q["scale"] if q else y
    return res


def run_onnxruntime(path, model, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def run_torch(path, model, feeds, names_in, names_out):
    import torch

    args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names_in]
    if model["runtime"] == "executorch":
        from executorch.runtime import Runtime

        ys = Runtime.get().load_program(Path(path)).load_method("forward").execute(args)
    else:
        from torch.jit.mobile import _load_for_lite_interpreter

        with torch.no_grad():
            ys = _load_for_lite_interpreter(str(path))(*args)
        ys = list(ys.values()) if isinstance(ys, dict) else list(ys) if isinstance(ys, (list, tuple)) else [ys]
    return {n: y.numpy() for n, y in zip(names_out, ys)}


def compare(expected, got, classifier):
    """Worst per-sample cosine and top-1 agreement over all vectors, per output."""
    res = {}
    for name in expected[0]:
        e = np.stack([x[name] for x in expected]).astype(np.float64)
        g = np.stack([x[name] for x in got]).astype(np.float64).reshape(e.shape)
        ef, gf = e.reshape(len(e), -1), g.reshape(len(g), -1)
        den = np.linalg.norm(ef, axis=1) * np.linalg.norm(gf, axis=1)
        cos = np.where(den > 0, (ef * gf).sum(1) / np.where(den > 0, den, 1), 1.0)
        res[name] = {"cosine_min": float(cos.min()), "nonfinite": int((~np.isfinite(g)).sum())}
        if classifier:
            res[name]["top1"] = float((ef.argmax(1) == gf.argmax(1)).mean())
    return res


DOMAIN = b"edgekit.bundle-signature/1\n"  # as edgekit/signing.py


def inside(root, rel):
    """A path model.json names, refused unless it stays inside the package."""
    p = (root / rel).resolve()
    if root.resolve() not in p.parents:
        raise ValueError(f"{rel!r} points outside the package; refused")
    return p


def check_signature(root, pkg, key_path):
    """Failures (empty when the signature verifies with the trusted key and every model file's
    sha256 is the one the signed bundle manifest lists)."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    entry = pkg.get("signature")
    if not entry:
        return ["the package carries no bundle signature (its bundle was not signed: edgekit sign)"]
    manifest_bytes = inside(root, entry["manifest"]).read_bytes()
    sig = json.loads(inside(root, entry["signature"]).read_text())
    key = serialization.load_pem_public_key(Path(key_path).read_bytes())
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if sig.get("key_id") != hashlib.sha256(raw).hexdigest()[:16]:
        return [f"signed by key {sig.get('key_id')}, not the trusted key {hashlib.sha256(raw).hexdigest()[:16]}"]
    digest = hashlib.sha256(manifest_bytes)
    if digest.hexdigest() != sig.get("manifest_sha256"):
        return ["the bundle manifest changed after it was signed"]
    try:
        key.verify(base64.b64decode(sig["signature"]), DOMAIN + digest.digest())
    except InvalidSignature:
        return ["the signature does not verify with the trusted key"]
    listed = {a["id"]: a["sha256"] for a in json.loads(manifest_bytes)["artifacts"]}
    return [f"{m['file']}: not the file the signed manifest lists for {m['id']}" for m in pkg["models"]
            if listed.get(m["id"]) != m["sha256"] or sha256(inside(root, m["file"])) != m["sha256"]]


def check(root, model, pkg):
    try:
        path = inside(root, model["file"])
        for v in pkg["selftest"]["vectors"]:
            for t in [*v["inputs"].values(), *v["expected"].values()]:
                inside(root, t["file"])
    except ValueError as e:
        return [str(e)]
    if not path.is_file():
        return [f"{model['file']}: missing"]
    if sha256(path) != model["sha256"]:
        return [f"{model['file']}: sha256 mismatch: the file is corrupted or was replaced; do not load it"]
    vectors = pkg["selftest"]["vectors"]
    names_in = [t["name"] for t in pkg["inputs"]]
    names_out = [t["name"] for t in pkg["outputs"]]
    got, expected = [], []
    for v in vectors:
        feeds = to_file_layout(model, {n: read_tensor(root, v["inputs"][n]) for n in names_in})
        try:
            if model["runtime"] == "litert":
                out = run_litert(path, model, feeds)
            elif model["runtime"] == "onnxruntime":
                out = run_onnxruntime(path, model, feeds)
            else:
                out = run_torch(path, model, feeds, names_in, names_out)
        except Exception as e:  # a model that does not load or run fails its self-test, with the reason
            return [f"{model['file']}: failed to run on {model['runtime']}: {type(e).__name__}: {e}"]
        got.append(out)
        expected.append({n: read_tensor(root, v["expected"][n]) for n in names_out})
    tol = model["tolerance"]
    failures = []
    for name, m in compare(expected, got, pkg["model"]["task"] == "classification").items():
        if m["nonfinite"] > tol.get("max_nonfinite", 0):
            failures.append(f"{name}: {m['nonfinite']} NaN/Inf values")
        if m["cosine_min"] < tol["cosine_min"]:
            failures.append(f"{name}: cosine {m['cosine_min']:.6f} < {tol['cosine_min']}")
        if "top1" in m and m["top1"] < tol["top1_min"]:
            failures.append(f"{name}: top-1 agreement {m['top1']:.3f} < {tol['top1_min']}")
    return [f"{model['file']}: self-test failed: {f}" for f in failures]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", nargs="?", default=str(Path(__file__).resolve().parent))
    ap.add_argument("--model", help="id of one model in model.json (default: all)")
    ap.add_argument("--trusted-key", help="the signer's public key (PEM): require a valid bundle signature")
    args = ap.parse_args(argv)
    root = Path(args.package)
    pkg = json.loads((root / "model.json").read_text())
    if args.trusted_key:
        try:
            sig_failures = check_signature(root, pkg, args.trusted_key)
        except (OSError, ValueError, KeyError) as e:
            sig_failures = [f"unreadable signature or key: {type(e).__name__}: {e}"]
        print(f"{'PASS' if not sig_failures else 'FAIL'} signature" + "".join(f"\n  {f}" for f in sig_failures))
        if sig_failures:
            return 1
    models = [m for m in pkg["models"] if args.model in (None, m["id"])]
    if not models:
        print(f"no model {args.model!r} in {root / 'model.json'}", file=sys.stderr)
        return 1
    bad = 0
    for m in models:
        failures = check(root, m, pkg)
        print(f"{'PASS' if not failures else 'FAIL'} {m['id']} ({m['role']}, {m['runtime']}, {m['precision']})"
              + "".join(f"\n  {f}" for f in failures))
        bad += bool(failures)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
