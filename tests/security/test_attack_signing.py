"""Signed bundles: a manifest's sha256 values are self-attested, so anyone who edits it can swap a
model; a signature by a key the user trusts closes that. Real ed25519 keys (pyca/cryptography),
the real tiny-CNN bundle, real runtimes."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

import edgekit
from attack import edgekit_cli, one_line_error
from edgekit.errors import SignatureError

pytestmark = [pytest.mark.onnxruntime, pytest.mark.torchscript_lite]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    for name in ("ours", "theirs"):
        p = edgekit_cli("keygen", "--out", d / name)
        assert p.returncode == 0, p.stderr
    assert (d / "ours").stat().st_mode & 0o777 == 0o600
    return d


@pytest.fixture
def signed(tiny_bundle, tmp_path, keys):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    p = edgekit_cli("sign", b, "--key", keys / "ours")
    assert p.returncode == 0 and "signature by key" in p.stdout, p.stderr
    return b


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_signed_bundle_serves_with_the_right_key(signed, keys):
    p = edgekit_cli("verify", signed, "--require-signature", "--trusted-key", keys / "ours.pub", "--no-history")
    assert p.returncode == 0 and "signature OK" in p.stderr, p.stderr
    pred = edgekit.load(signed, trusted_keys=[keys / "ours.pub"])
    assert pred.active == json.loads((signed / "manifest.json").read_text())["artifacts"][0]["id"]


TAMPERING = {
    "one byte of the manifest": (lambda b, k: _flip_one_byte(b / "manifest.json"), "changed after it was signed"),
    "one byte of an artifact": (lambda b, k: _flip_one_byte(next((b / "artifacts").iterdir())), "sha256|bytes"),
    "a re-signature with another key": (lambda b, k: edgekit_cli("sign", b, "--key", k / "theirs"),
                                        "not one of the trusted keys"),
    "the signature removed": (lambda b, k: (b / "signature.json").unlink(), "is not signed"),
    "a forged signature value": (lambda b, k: (b / "signature.json").write_text(json.dumps(
        {**json.loads((b / "signature.json").read_text()), "signature": "A" * 86 + "=="})), "does not verify"),
}


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_tampered_or_resigned_bundle_is_refused(signed, keys, tamper):
    change, says = TAMPERING[tamper]
    change(signed, keys)
    p = edgekit_cli("verify", signed, "--require-signature", "--trusted-key", keys / "ours.pub", "--no-history")
    err = one_line_error(p, 13)  # the signature is checked first, before the manifest is even parsed
    assert re.search(says, err), err
    with pytest.raises((SignatureError, edgekit.errors.BundleError)):
        edgekit.load(signed, trusted_keys=[keys / "ours.pub"])


def test_require_signature_without_a_trusted_key_is_a_usage_error(signed):
    p = edgekit_cli("verify", signed, "--require-signature")
    assert "needs the keys you trust" in one_line_error(p, 2) and "hint: --trusted-key" in p.stderr


def test_package_carries_the_signature_and_the_app_checks_it(signed, keys, tmp_path):
    out = tmp_path / "pkg"
    assert edgekit_cli("package", signed, "--for", "linux", "--out", out).returncode == 0
    pkg = json.loads((out / "model.json").read_text())
    assert pkg["signature"]["key_id"] and (out / pkg["signature"]["signature"]).is_file()

    def check(key):
        return subprocess.run([sys.executable, str(out / "check_model.py"), str(out), "--trusted-key", str(key)],
                              capture_output=True, text=True)

    ok = check(keys / "ours.pub")
    assert ok.returncode == 0 and "PASS signature" in ok.stdout, ok.stdout + ok.stderr
    wrong = check(keys / "theirs.pub")
    assert wrong.returncode == 1 and "FAIL signature" in wrong.stdout
    _flip_one_byte(out / pkg["models"][0]["file"])  # a swapped model file in the app
    swapped = check(keys / "ours.pub")
    assert swapped.returncode == 1 and "not the file the signed manifest lists" in swapped.stdout
