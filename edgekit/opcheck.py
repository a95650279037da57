"""Pre-flight op check: will each candidate of a target convert and run, and where is the risk?

The model is exported once (torch.export; the ONNX export when a candidate needs it). Each
converter file answers for itself in `preflight(ctx)`, against the support tables its toolchain
exposes (ONNX Runtime's kernel registry, ExecuTorch's XNNPACK partitioner and kernel registry,
litert-torch's lowering registry) — not a hand-kept list. A verdict:

    status: "ok"       every operator is known to convert and run on the accelerated path
            "slow"     it converts, but some operators run off the accelerated backend
            "fails"    an operator cannot be converted or run (listed with the user's source line)
            "risky"    it converts, but may compute something else for some inputs (a traced
                       data-dependent branch): verification decides, and its failure names the line
            "unknown"  the check itself could not decide (its error is given; conversion decides)

`check` prints these; `compile` runs the same check in its prepare step, skips candidates that
would fail (unless --no-preflight) and names the op and source line when a conversion fails anyway.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .findings import finding, rewrite_for, where


@dataclass
class OpContext:
    """What one export of the model gives every converter's preflight."""

    exported: object | None  # torch.export.ExportedProgram, or None when the export failed / ONNX source
    ops: list[dict]  # graphops.list_ops of the exported graph
    export_error: dict | None = None  # graphops.export_error
    onnx_path: Path | None = None
    onnx_error: dict | None = None
    is_torch: bool = True
    notes: list[str] = field(default_factory=list)

    def verdict(self, unsupported: list[dict], not_accelerated: list[dict] = (), table: str = "",
                extra: dict | None = None, risks: list[dict] = ()) -> dict:
        status = "fails" if unsupported else ("risky" if risks else ("slow" if not_accelerated else "ok"))
        return {"status": status, "unsupported": unsupported, "not_accelerated": list(not_accelerated),
                "risks": list(risks), "table": table, **(extra or {})}

    def failed_before(self, stage: str, err: dict) -> dict:
        """The model never reaches this converter: its export failed."""
        return {"status": "fails", "stage": stage, "table": stage,
                "unsupported": [{"op": err.get("op") or err.get("kind", "export"), "node": err.get("node", ""),
                                 "source": err.get("source"), "why": err["error"]}],
                "not_accelerated": []}

    def needs_torch(self, converter: str) -> dict | None:
        if self.is_torch:
            return self.export_error and self.failed_before("torch.export", self.export_error)
        return {"status": "fails", "stage": "source", "table": "", "not_accelerated": [],
                "unsupported": [{"op": "-", "node": "", "source": None,
                                 "why": f"the {converter} converter takes a PyTorch model; this source is ONNX"}]}


def export_program(module, example: dict):
    """(ExportedProgram or None, error dict or None): the one torch.export every check shares."""
    import torch

    from .converters import torch_args
    from .graphops import export_error

    try:
        with torch.no_grad():
            return torch.export.export(module, torch_args(example)), None
    except Exception as e:  # the finding itself: data-dependent branch, dynamic shape, untraceable code
        return None, export_error(e)


def run_checks(ctx: OpContext, converters: list[str]) -> dict[str, dict]:
    """converter name -> verdict. A check that breaks says "unknown"; it never blocks a conversion."""
    from . import converters as registry
    from .errors import root_cause

    out = {}
    for name in dict.fromkeys(converters):
        check = registry.get(name).preflight
        if check is None:
            out[name] = {"status": "unknown", "unsupported": [], "not_accelerated": [], "table": "",
                         "error": f"the {name} converter has no pre-flight check"}
            continue
        try:
            out[name] = check(ctx)
        except Exception as e:  # noqa: BLE001 — the check is advice; conversion is the judge
            import traceback

            traceback.print_exc()
            out[name] = {"status": "unknown", "unsupported": [], "not_accelerated": [], "table": "",
                         "error": f"the check could not run: {root_cause(e)}"}
    return out


def ops_of_onnx(path: Path) -> list[dict]:
    """The op list of a given ONNX model (an ONNX source has no torch export)."""
    import onnx_ir as ir

    return [{"op": f"{n.domain or 'ai.onnx'}.{n.op_type}", "node": n.name, "dtypes": [], "source": None,
             "module": ""} for n in ir.load(str(path)).graph]


def failure_message(cand_id: str, verdict: dict) -> str:
    """What compile records for a candidate the check says cannot convert."""
    first = verdict["unsupported"][0]
    more = len(verdict["unsupported"]) - 1
    return (f"pre-flight check: {finding(first)}" + (f" (+{more} more operator(s); see `check`)" if more > 0 else ""))


def report_lines(profile, preflight: dict) -> list[str]:
    """The `check` report: per candidate, its verdict and the operators behind it."""
    verdicts = preflight["verdicts"]
    counts = preflight.get("op_counts", {})
    lines = [f"note: {n}" for n in preflight.get("notes", [])]
    lines += [f"model: {sum(counts.values())} operators after {preflight['export']}, {len(counts)} kinds: "
             + ", ".join(f"{k} x{v}" for k, v in list(counts.items())[:8]) + (" ..." if len(counts) > 8 else "")
             ] if counts else []
    if preflight.get("export_error"):
        e = preflight["export_error"]
        lines.append(f"torch.export failed ({e['kind']}) at {where(e['source']) or 'an unknown line'}: {e['error']}")
    for c in profile.candidates:
        v = verdicts.get(c.converter, {"status": "unknown", "error": "not checked"})
        mark = {"ok": "ok  ", "slow": "SLOW", "fails": "FAIL", "risky": "RISK", "unknown": "??  "}[v["status"]]
        cov = v.get("coverage")
        extra = (f" — {100 * cov['ops_share']:.0f}% of ops, "
                 + (f"{100 * cov['flops_share']:.0f}% of FLOPs" if cov.get("flops_share") is not None else "no FLOPs")
                 + " on XNNPACK") if cov and cov.get("ops_share") is not None else ""
        lines.append(f"  [{mark}] {c.id}: {c.converter} -> {c.runtime}{extra}")
        for f in v.get("unsupported", [])[:5]:
            lines.append(f"         cannot: {finding(f)}")
        for f in v.get("risks", [])[:5]:
            lines.append(f"         risk:   {finding(f)}")
        for f in v.get("not_accelerated", [])[:5]:
            lines.append(f"         slow:   {finding(f)}")
        if v.get("error"):
            lines.append(f"         {v['error']}")
        if v.get("table"):
            lines.append(f"         (from: {v['table']})")
    tip = rewrite_for([f for v in verdicts.values() for f in v.get("unsupported", []) + v.get("risks", [])])
    if tip:
        lines.append(f"try: {tip}")
    return lines


def check_model(spec: str | None, target: str, weights: str | None = None, json_out: str | None = None,
                inputs: list[str] | None = None) -> int:
    """`edgekit check`: export once, judge every candidate of the target, print; the exit code says
    whether all (0), some (12, like a degraded compile) or none (6) of the candidates can convert."""
    import json
    import shutil
    import sys
    import tempfile

    from . import deps
    from . import converters
    from .errors import EXIT_DEGRADED, ConversionError, ToolchainMissing
    from .isolate import run_step
    from .sources import DEFAULT_MODEL, preflight
    from .targets import get_profile

    spec = spec or DEFAULT_MODEL
    profile = get_profile(target)
    preflight(spec, weights, inputs)
    missing = {c.id: c.missing_toolchains() for c in profile.candidates}
    usable = [c for c in profile.candidates if not missing[c.id]]
    if not usable:
        first = next(iter(missing.values()))[0]
        raise ToolchainMissing(f"target {target!r} cannot be checked here: not installed: {first}",
                               hint=deps.TOOLCHAINS[first].install)
    tmp = Path(tempfile.mkdtemp(prefix="edgekit-check-"))
    print(f"[edgekit] check {spec} for target '{profile.name}' (export once, then each toolchain's tables) ...",
          file=sys.stderr, flush=True)
    # on failure the temp folder stays: the error names its log
    info = run_step("check", "edgekit.steps:prepare",
                    {"spec": spec, "weights": weights, "workdir": str(tmp / "work"),
                     "need_onnx": any(converters.get(c.converter).needs_onnx for c in usable),
                     "converters": [c.converter for c in usable], "inputs": inputs, "shapes": False}, tmp / "logs")
    shutil.rmtree(tmp, ignore_errors=True)
    pre = info["preflight"]  # an ONNX export failure is already onnx-ort's verdict (onnx_ort.preflight)
    for c in profile.candidates:
        if missing[c.id]:
            pre["verdicts"].setdefault(c.converter, {
                "status": "unknown", "unsupported": [], "not_accelerated": [], "table": "",
                "error": f"not installed: {', '.join(missing[c.id])} ({deps.TOOLCHAINS[missing[c.id][0]].install})"})
    print(f"{info['name']} -> target '{profile.name}'")
    print("\n".join(report_lines(profile, pre)))
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps({"model": info["name"], "target": profile.name, **pre}, indent=2))
    failing = [c.id for c in usable if pre["verdicts"].get(c.converter, {}).get("status") == "fails"]
    if len(failing) == len(usable):  # every candidate that can be built here would fail
        only_source = all(pre["verdicts"].get(c.converter, {}).get("stage") == "source" for c in usable)
        raise ConversionError(f"no candidate of target {target!r} can convert this model (pre-flight check)",
                              hint="this target's converters need a PyTorch model (file.py:factory, a .pt2 export or "
                                   "builtin:NAME); ONNX sources go to --target cpu" if only_source else
                              rewrite_for([f for v in pre["verdicts"].values() for f in v["unsupported"]])
                              or "see the operators listed above")
    return EXIT_DEGRADED if failing else 0
