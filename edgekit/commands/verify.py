"""`edgekit verify`: check a bundle's files and re-run its self-test vectors here."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError
from ..table import render
from .common import add_device_opts, add_history_opts, record


def add_parser(sub) -> None:
    v = sub.add_parser("verify", help="check a bundle's files and re-run its self-test vectors here")
    v.add_argument("bundle")
    v.add_argument("--require-signature", action="store_true", help="fail (exit 13) unless the bundle is signed "
                   "by one of the --trusted-key keys and unchanged since")
    v.add_argument("--trusted-key", action="append", metavar="KEY.pub", help="a signer's public key you trust "
                   "(repeat); with a signed bundle, its signature is checked even without --require-signature")
    add_device_opts(v)
    add_history_opts(v)


VERIFY_HEAD = ["artifact", "self-test", "cosine", "max abs err", "failures"]


def _verify_rows(results) -> tuple[list, list]:
    """(artifact id, metrics, failures) per artifact -> the verify table's rows, and the failures."""
    rows, bad = [], []
    for aid, metrics, fails in results:
        m = next(iter((metrics or {}).values()), {"cosine": float("nan"), "max_abs": float("nan")})
        rows.append([aid, "failed" if fails else "passed", f"{m['cosine']:.6f}", f"{m['max_abs']:.2e}", "; ".join(fails)])
        bad += [f"{aid}: {f}" for f in fails]
    return rows, bad


def _verify_done(args, manifest, rows: list, bad: list, title: str, measured_on: str, extra_rows=()) -> int:
    """Print the verify table, record each result in the history, raise if any failed."""
    from ..errors import VerificationFailed

    print(render(VERIFY_HEAD, rows + list(extra_rows), title))
    record(args, "verify", [{"artifact": r[0], "status": r[1], "failures": r[4], "measured_on": measured_on,
                              "cosine": r[2]} for r in rows], manifest)
    if bad:
        raise VerificationFailed(f"self-test failed ({measured_on}): " + "; ".join(bad))
    return 0


def _verify_in_chromium(bundle: Path, manifest, args) -> int:
    """`verify --device chromium`: each TF.js artifact's self-test in a page of headless Chromium."""
    from ..runtimes import open_runner
    from ..selftest import check_runner

    web = [a for a in manifest.usable() if a.runtime == "tfjs"]
    if not web:
        raise UsageError(f"{bundle} has no TF.js artifact to run in Chromium", hint="compile with --target browser")
    agent = []

    def results():
        for a in web:
            runner = open_runner("tfjs-chromium", bundle / a.path, None, a.inputs, a.outputs, a.input_layout)
            try:
                agent[:] = [runner.user_agent]
                yield (a.id, *check_runner(runner, bundle, manifest, a))
            finally:
                runner.close()

    rows, bad = _verify_rows(results())
    return _verify_done(args, manifest, rows, bad, f"{bundle} in headless Chromium ({agent[0]})", "headless Chromium")


def _check_bundle_signature(bundle: Path, args) -> None:
    """verify --require-signature / --trusted-key: the signature first, before anything runs."""
    from ..signing import SIGNATURE, check_signed_bundle

    if args.require_signature and not args.trusted_key:
        raise UsageError("--require-signature needs the keys you trust: a signature by any other key proves nothing",
                         hint="--trusted-key SIGNER.pub (repeat for several)")
    if args.trusted_key and (args.require_signature or (bundle / SIGNATURE).is_file()):
        ok = check_signed_bundle(bundle, args.trusted_key)
        print(f"[edgekit] signature OK: signed by trusted key {ok['key_id']} ({ok['signed']})", file=sys.stderr)
    elif (bundle / SIGNATURE).is_file():
        print(f"[edgekit] note: {bundle} is signed, but no --trusted-key was given, so the signature is not "
              "checked", file=sys.stderr)


def run(args) -> int:
    """Re-check a bundle here: integrity, then each usable artifact on its runtime against the self-test vectors."""
    from ..bundle import open_bundle
    from ..selftest import check_artifact

    bundle = Path(args.bundle)
    _check_bundle_signature(bundle, args)
    manifest = open_bundle(bundle)
    if args.device == "chromium":
        return _verify_in_chromium(bundle, manifest, args)
    if args.device:
        from ..remote import remote_verify

        rows, bad = [], []
        for r in remote_verify(args.device, bundle, identity=args.identity, device_python=args.device_python,
                               known_hosts=args.known_hosts):
            m = next(iter((r.get("metrics") or {}).values()), {"cosine": float("nan"), "max_abs": float("nan")})
            rows.append([r["artifact"], r["status"], f"{m['cosine']:.6f}", f"{m['max_abs']:.2e}",
                         "; ".join(r.get("failures") or []) or r.get("skipped", "")])
            bad += [f"{r['artifact']}: {f}" for f in r.get("failures") or []]
        return _verify_done(args, manifest, rows, bad, f"{bundle} on {args.device}: sha256 of every file OK on the device",
                            f"device {args.device}")
    rows, bad = _verify_rows((a.id, *check_artifact(bundle, manifest, a)) for a in manifest.usable())
    waiting = [[a.id, "on-device", "-", "-", f"runs on the device: python -m edgekit build {bundle} there"]
               for a in manifest.artifacts if a.role == "on-device"]
    return _verify_done(args, manifest, rows, bad, f"{bundle}: sha256 of every file OK; "
                        f"{(manifest.selftest or {}).get('samples', 0)} self-test vectors per artifact", "host",
                        extra_rows=waiting)
