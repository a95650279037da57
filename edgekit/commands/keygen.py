"""`edgekit keygen`: make an ed25519 key pair for signing bundles: KEY and KEY.pub."""
from __future__ import annotations



def add_parser(sub) -> None:
    kg = sub.add_parser("keygen", help="make an ed25519 key pair for signing bundles: KEY and KEY.pub")
    kg.add_argument("--out", required=True, metavar="KEY", help="private key file to create (never overwritten)")


def run(args) -> int:
    from ..signing import generate_key, load_public_keys

    priv, pub = generate_key(args.out)
    (kid,) = load_public_keys([pub])
    print(f"private key: {priv} (keep it secret; mode 0600)\npublic key:  {pub} (give it to whoever checks; "
          f"key id {kid})")
    return 0
