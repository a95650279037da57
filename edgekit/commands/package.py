"""`edgekit package`: what an app embeds: model file(s), model.json, self-test vectors."""
from __future__ import annotations

import json



def add_parser(sub) -> None:
    k = sub.add_parser("package", help="what an app embeds: model file(s), model.json, self-test vectors")
    k.add_argument("bundle")
    k.add_argument("--for", dest="platform", required=True, choices=["android", "ios", "linux", "web"])
    k.add_argument("--out", required=True, help="package folder (written atomically)")
    k.add_argument("--artifact", action="append", help="artifact id to include (repeat; default: primary + one fallback)")


def run(args) -> int:
    from ..package import package_bundle

    out = package_bundle(args.bundle, args.platform, args.out, args.artifact)
    pkg = json.loads((out / "model.json").read_text())
    for m in pkg["models"]:
        print(f"{m['role']:8s} {m['file']}  ({m['runtime']}, {m['precision']}, {m['size_bytes'] / 1024:.1f} kB)")
    check = (f"import {{loadEdgekitModel}} from './edgekit-web.js' (self-tests on load; serve {out} over HTTP)"
             if args.platform == "web" else f"python {out / 'check_model.py'}")
    print(f"{out}: model.json, {pkg['selftest']['samples']} self-test vectors; check: {check}")
    return 0
