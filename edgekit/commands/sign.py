"""`edgekit sign`: sign a bundle (ed25519 over its manifest, which lists every file's sha256)."""
from __future__ import annotations

from pathlib import Path



def add_parser(sub) -> None:
    sg = sub.add_parser("sign", help="sign a bundle (ed25519 over its manifest, which lists every file's sha256)")
    sg.add_argument("bundle")
    sg.add_argument("--key", required=True, help="private key (PEM) from `edgekit keygen`")


def run(args) -> int:
    from ..signing import SIGNATURE, sign_bundle

    rec = sign_bundle(args.bundle, args.key)
    print(f"{Path(args.bundle) / SIGNATURE}: ed25519 signature by key {rec['key_id']} over manifest.json "
          f"(sha256 {rec['manifest_sha256'][:16]}...), which lists every file's sha256")
    return 0
