"""Signed bundles: an ed25519 signature over the manifest's exact bytes.

Why the manifest alone: it lists every artifact's and self-test file's sha256, and every reader
checks files against it (edgekit.bundle.check_listed_file), so a valid signature on the manifest
binds the whole bundle. Without one, those sha256 values are self-attested: whoever edits the
manifest can swap a model.

What is trusted is the *verifier's* list of public keys, never the key a signature file names:
`signature.json` carries the signer's key id (and public key, for information); verification
looks the id up among the trusted keys and checks the signature with that key. A re-signature with
another key is therefore refused, however valid it is for its own key.

The library: `cryptography` (pyca; ed25519 from OpenSSL). OpenSSF `model-signing` signs a model
folder as a whole with Sigstore or keys; edgekit signs its own manifest, which already hashes
every file, so a small, offline key pair is all a device needs.

    edgekit keygen --out K            K (private, 0600) and K.pub
    edgekit sign BUNDLE --key K       BUNDLE/signature.json, written atomically
    edgekit verify BUNDLE --require-signature --trusted-key K.pub
    edgekit.load(BUNDLE, trusted_keys=["K.pub"])
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from . import deps
from .errors import SignatureError, UsageError
from .manifest import MANIFEST

SIGNATURE = "signature.json"
SIG_SCHEMA = "edgekit.signature/1"
# Domain separation: these bytes can only ever verify as an edgekit bundle signature.
DOMAIN = b"edgekit.bundle-signature/1\n"
MAX_SIGNATURE_BYTES = 64 << 10


def _crypto():
    deps.require("cryptography", "signing and checking bundle signatures")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return serialization, ed25519


def key_id(public_key) -> str:
    """16 hex digits of the sha256 of the raw public key: how a signature names its key."""
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key(out: str) -> tuple[Path, Path]:
    """A new ed25519 key pair: OUT (private, PEM, mode 0600) and OUT.pub (public, PEM). Never overwrites."""
    serialization, ed25519 = _crypto()
    priv_path, pub_path = Path(out), Path(str(out) + ".pub")
    for p in (priv_path, pub_path):
        if p.exists() or p.is_symlink():
            raise UsageError(f"{p} already exists; refusing to overwrite a key", hint="choose another --out")
    key = ed25519.Ed25519PrivateKey.generate()
    priv_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    priv_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(priv_pem)
    pub_path.write_bytes(pub_pem)
    return priv_path, pub_path


def _read_key_file(path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"key file {path}: {e.strerror or e}") from None
    if len(data) > 16 << 10:
        raise UsageError(f"key file {path} is {len(data)} bytes: not a PEM key")
    return data


def load_private_key(path: str):
    serialization, ed25519 = _crypto()
    data = _read_key_file(Path(path))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--key {path} is not an unencrypted PEM private key ({str(e)[:120]})",
                         hint="make one with: python -m edgekit keygen --out KEY") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"--key {path} is a {type(key).__name__}, not an ed25519 key",
                         hint="make one with: python -m edgekit keygen --out KEY")
    return key


def load_public_keys(specs) -> dict[str, object]:
    """{key id: public key} from paths to PEM public keys (a private key file gives its public half),
    or key objects. An empty list is a usage error: trusting nothing cannot be what was meant."""
    serialization, ed25519 = _crypto()
    if isinstance(specs, (str, os.PathLike)) or not isinstance(specs, (list, tuple, set)):
        specs = [specs]
    keys = {}
    for spec in specs:
        if isinstance(spec, ed25519.Ed25519PublicKey):
            key = spec
        else:
            data = _read_key_file(Path(spec))
            try:
                key = serialization.load_pem_public_key(data)
            except ValueError:
                try:
                    key = serialization.load_pem_private_key(data, password=None).public_key()
                except (ValueError, TypeError) as e:
                    raise UsageError(f"trusted key {spec} is not a PEM ed25519 key ({str(e)[:120]})") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise UsageError(f"trusted key {spec} is a {type(key).__name__}, not an ed25519 key")
        keys[key_id(key)] = key
    if not keys:
        raise UsageError("no trusted key given: a signature can only be checked against keys you trust",
                         hint="--trusted-key KEY.pub (repeat for several)")
    return keys


def _message(manifest_bytes: bytes) -> bytes:
    return DOMAIN + hashlib.sha256(manifest_bytes).digest()


def sign_bundle(bundle_dir: str, key_path: str) -> dict:
    """Check the bundle (complete, every file matching the manifest), then write its signature."""
    from .bundle import open_bundle, write_atomically

    key = load_private_key(key_path)
    bundle = Path(bundle_dir)
    open_bundle(bundle)  # never sign what does not check out: the signature vouches for these files
    manifest_bytes = (bundle / MANIFEST).read_bytes()
    serialization, _ = _crypto()
    pub = key.public_key()
    record = {
        "schema": SIG_SCHEMA, "algorithm": "ed25519", "key_id": key_id(pub),
        "public_key": base64.b64encode(pub.public_bytes(serialization.Encoding.Raw,
                                                        serialization.PublicFormat.Raw)).decode(),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "signature": base64.b64encode(key.sign(_message(manifest_bytes))).decode(),
        "signed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": "ed25519 over b'edgekit.bundle-signature/1\\n' + sha256(manifest.json bytes); the manifest "
                "lists every file's sha256",
    }
    write_atomically(bundle / SIGNATURE, json.dumps(record, indent=2))
    return record


def read_signature(sig_path: Path) -> dict:
    if not sig_path.is_file():
        raise SignatureError(f"{sig_path.parent} is not signed ({SIGNATURE} is missing); refused because a "
                             "signature is required", hint=f"sign it: python -m edgekit sign {sig_path.parent} --key KEY")
    try:
        if sig_path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise ValueError("too large")
        rec = json.loads(sig_path.read_bytes())
        if not isinstance(rec, dict) or rec.get("schema") != SIG_SCHEMA or rec.get("algorithm") != "ed25519":
            raise ValueError(f"schema {rec.get('schema') if isinstance(rec, dict) else None!r}")
        signature = base64.b64decode(rec["signature"], validate=True)
        if not isinstance(rec.get("key_id"), str) or not isinstance(rec.get("manifest_sha256"), str):
            raise ValueError("key_id or manifest_sha256 missing")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise SignatureError(f"{sig_path} is not a valid edgekit signature ({type(e).__name__}: {str(e)[:120]}); "
                             "refused") from None
    return {**rec, "signature": signature}


def check_signature(bundle_dir, trusted_keys, manifest_bytes: bytes | None = None) -> dict:
    """Raise SignatureError unless the bundle's manifest carries a valid signature by one of
    `trusted_keys`; return {"key_id", "signed"}. Checks only the manifest: callers then check every
    file against it (open_bundle / the fallback predictor do)."""
    keys = load_public_keys(trusted_keys)  # first: says how to install cryptography if it is missing
    from cryptography.exceptions import InvalidSignature

    bundle = Path(bundle_dir)
    sig = read_signature(bundle / SIGNATURE)
    if manifest_bytes is None:
        manifest_bytes = (bundle / MANIFEST).read_bytes()
    key = keys.get(sig["key_id"])
    if key is None:
        raise SignatureError(f"{bundle} is signed by key {sig['key_id']}, which is not one of the trusted keys "
                             f"({', '.join(keys)}); refused (re-signed by someone else, or the wrong key was given)")
    if hashlib.sha256(manifest_bytes).hexdigest() != sig["manifest_sha256"]:
        raise SignatureError(f"{bundle}: {MANIFEST} changed after it was signed (its sha256 is not the one the "
                             "signature covers); refused")
    try:
        key.verify(sig["signature"], _message(manifest_bytes))
    except InvalidSignature:
        raise SignatureError(f"{bundle}: the signature does not verify with trusted key {sig['key_id']}; "
                             "refused (the manifest or the signature was altered)") from None
    return {"key_id": sig["key_id"], "signed": sig.get("signed")}


def check_signed_bundle(bundle_dir, trusted_keys) -> dict:
    """check_signature, then every file the signed manifest lists, hashed: a bundle with a trusted
    signature is accepted whole or refused whole (a changed artifact is tampering, not a reason to
    fall back quietly)."""
    from .bundle import open_bundle
    from .errors import BundleError

    ok = check_signature(bundle_dir, trusted_keys)
    try:
        open_bundle(bundle_dir, check_hashes=True)
    except BundleError as e:
        raise SignatureError(f"{e.message}; the signed manifest vouches for other bytes, so the bundle is refused "
                             "whole", hint=e.hint) from None
    return ok
