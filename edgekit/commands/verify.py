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


def _verify_done(args, manifest, rows: list, bad: list, title: str, measured_on: str, extra_rows=(),
                 head=VERIFY_HEAD, records: list[dict] | None = None) -> int:
    """Print the verify table, record each result in the history (`records`, or one per row), raise if
    any failed."""
    from ..errors import VerificationFailed

    print(render(head, rows + list(extra_rows), title))
    record(args, "verify", records if records is not None else [
        {"artifact": r[0], "status": r[1], "failures": r[4], "measured_on": measured_on, "cosine": r[2]} for r in rows],
        manifest)
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


def _parity_cell(p: dict | None) -> str:
    """The device's outputs against this host's run of the same artifact, in a few words."""
    if p is None:
        return "-"
    if "skipped" in p or "error" in p:
        return p.get("skipped") or p["error"]
    if p["differing_values"] == 0:
        words = "bit-exact"
    else:
        words = f"max |diff| {p['max_abs_diff']:.2e}, {p['differing_values']}/{p['values']} values differ"
    if "top1_agree" in p:
        words += f"; top-1 {p['top1_agree']}/{p['vectors']}"
    return words


def _verify_on_device(bundle: Path, manifest, args) -> int:
    """`verify --device ssh://...`: each artifact's self-test on the device, and its outputs against this
    host's run of the same artifact (Arm kernels vs x86 kernels, when the host has the runtime)."""
    from ..parity import versus_host
    from ..remote import remote_verify

    results = remote_verify(args.device, bundle, identity=args.identity, device_python=args.device_python,
                            timeout_s=args.device_timeout,
                            known_hosts=args.known_hosts)
    device = results[0]["device"] if results else {}
    by_id = {a.id: a for a in manifest.artifacts}
    rows, bad = [], []
    results = [r for r in results if r.get("artifact") in by_id]  # the device answers for this bundle's artifacts only
    for r in results:
        m = next(iter((r.get("metrics") or {}).values()), {"cosine": float("nan"), "max_abs": float("nan")})
        r["vs_host"] = versus_host(bundle, manifest, by_id[r["artifact"]], r.pop("outputs", None))
        role = r.get("role")
        rows.append([r["artifact"] + (f" ({role})" if role in ("on-device", "rejected") else ""), r["status"],
                     f"{m['cosine']:.6f}", f"{m['max_abs']:.2e}", _parity_cell(r["vs_host"]),
                     "; ".join(r.get("failures") or []) or r.get("skipped", "")])
        if role != "rejected":  # rejected at compile: run for the comparison, never part of the verdict
            bad += [f"{r['artifact']}: {f}" for f in r.get("failures") or []]
    where = results[0]["measured_on"] if results else f"device {args.device}"
    title = f"{bundle} on {where}: sha256 of every file OK on the device"
    emu = device.get("emulated")
    if emu:
        title += ("\nnumerics on the runtimes' Arm kernels under an emulated CPU (never device timings); "
                  f"CPU features the guest saw: {', '.join(device.get('cpu_flags') or []) or 'NEON only'}")
        want = _profile_cpu(manifest)
        if want and want != emu["cpu"]:
            print(f"[edgekit] note: {manifest.target.get('name')} devices have a {want}-class CPU; this device "
                  f"emulates {emu['cpu']}, so other kernels (dot product or not) may run than on the real one: "
                  f"python -m edgekit device start arm64 --target {manifest.target.get('name')}", file=sys.stderr)
    records = [{"artifact": r["artifact"], "status": r["status"], "failures": "; ".join(r.get("failures") or []),
                "measured_on": r["measured_on"], "where": r["where"],
                "cosine": next(iter((r.get("metrics") or {}).values()), {}).get("cosine"), "vs_host": r["vs_host"]}
               for r in results]
    return _verify_done(args, manifest, rows, bad, title, where, records=records,
                        head=[*VERIFY_HEAD[:4], "vs this host (same artifact)", VERIFY_HEAD[4]])


def _profile_cpu(manifest) -> str | None:
    from ..errors import UsageError
    from ..targets import get_profile

    try:
        return get_profile(manifest.target.get("name", "")).emulated_cpu
    except UsageError:
        return None


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
        return _verify_on_device(bundle, manifest, args)
    from ..offhost import device_words, runs_here

    # verified elsewhere (on the device, or the emulated arm64 one) for a machine this host is not
    elsewhere = [a for a in manifest.usable() if not runs_here(a.converter.get("runs_on") or {})]
    rows, bad = _verify_rows((a.id, *check_artifact(bundle, manifest, a)) for a in manifest.usable() if a not in elsewhere)
    waiting = [[a.id, "on-device", "-", "-", f"runs on the device: python -m edgekit build {bundle} there"]
               for a in manifest.artifacts if a.role == "on-device"]
    waiting += [[a.id, f"{a.verification.status} on {a.verification.where}", "-", "-",
                 f"built for {device_words(a.converter.get('runs_on') or {})}, not this host: "
                 f"verify {bundle} --device ssh://..."] for a in elsewhere]
    return _verify_done(args, manifest, rows, bad, f"{bundle}: sha256 of every file OK; "
                        f"{(manifest.selftest or {}).get('samples', 0)} self-test vectors per artifact", "host",
                        extra_rows=waiting)
