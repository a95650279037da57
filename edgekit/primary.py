"""`bench --all --choose-primary`: let latency measured *on the target* pick a bundle's primary.

At compile time a host that is not the target cannot rank phone artifacts, so the profile's
preference order decides (and the manifest says so). Once every usable artifact has been timed on
the device itself (`--device ssh://...`), or on this machine when it is the target (`cpu`), the
fastest median becomes primary and the others follow in their previous order. Only the manifest
changes (written to a temp file, fsynced, renamed): artifact files and their hashes do not.
"""
from __future__ import annotations

from pathlib import Path

from .bundle import manifest_json, write_atomically
from .errors import UsageError
from .manifest import MANIFEST, ROLE_RANK, Manifest


def check_can_choose(manifest: Manifest, device: str | None) -> None:
    if not device and not manifest.target.get("host_is_target"):
        raise UsageError(f"--choose-primary needs timings from the target device ({manifest.target.get('device')}); "
                         "this host is not it, and host timings do not rank artifacts on a device",
                         hint="edgekit bench BUNDLE --all --device ssh://user@device --choose-primary")


def choose_primary(bundle: Path, manifest: Manifest, results: list[dict]) -> dict:
    """Reorder by measured median latency; return the new `target.primary_choice`."""
    usable = {a.id for a in manifest.usable()}
    timed = {r["artifact"]: r for r in results if r["artifact"] in usable}
    missing = sorted(usable - set(timed))
    if missing:
        raise UsageError(f"--choose-primary needs every usable artifact timed; not timed: {missing}",
                         hint="add --all")
    fastest = min(timed, key=lambda i: timed[i]["latency_ms"]["p50"])
    old = manifest.target.get("primary_choice", {})
    # stable sort: others keep their order; rejected and on-device (not verified here) stay last
    manifest.artifacts.sort(key=lambda a: (ROLE_RANK[a.role], a.id != fastest))
    for a in manifest.artifacts:
        if a.role in ("primary", "fallback"):
            a.role = "primary" if a.id == fastest else "fallback"
    where = next(iter(timed.values()))["measured_on"]
    choice = {"rule": "fastest median latency measured on the target", "measured_on_device": True,
              "measured_on": where, "threads": next(iter(timed.values()))["threads"],
              "p50_ms": {i: round(r["latency_ms"]["p50"], 4) for i, r in timed.items()},
              "preferred": old.get("preferred"), "degraded": False, "on_device": old.get("on_device", []),
              "previous_rule": old.get("rule"), "why": f"timed on {where}"}
    manifest.target["primary_choice"] = choice
    write_atomically(Path(bundle) / MANIFEST, manifest_json(manifest))
    return choice


def timings(choice: dict) -> str:
    return ", ".join(f"{i} {v:.3f} ms" for i, v in sorted(choice["p50_ms"].items(), key=lambda x: x[1]))


def auto_primary(bundle: Path, manifest: Manifest, bench: dict, precision: str = "auto") -> str:
    """compile --precision P: of the verified candidates (of that precision; every precision for
    auto), the fastest measured here when this host is the target; otherwise the preference order
    stays, and the line says so."""
    if manifest.target.get("host_is_target") and bench:
        choice = choose_primary(bundle, manifest, list(bench.values()))
        return (f"[edgekit] --precision {precision}: primary {manifest.usable()[0].id}, the fastest verified candidate "
                f"on this host (the target): {timings(choice)}")
    return (f"[edgekit] --precision {precision}: this host is not the target ({manifest.target.get('device')}), so "
            "nothing here can rank the candidates by speed; the profile's preference order decides. On the device: "
            f"edgekit bench {bundle} --all --device ssh://... --choose-primary")
