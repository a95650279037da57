"""When compile fine-tunes an INT8 candidate (quantization-aware, converters/qat.py), and what it
records about it. The parent process decides; the converters (child processes) do the training.

- `--qat STEPS`: every INT8 candidate whose converter fine-tunes does, before verification.
- `--precision auto`, first inside the converter (converters/pt2e.py `_when_missed`): when every
  post-training variant misses the cosine tolerance on the calibration samples.
- `--precision auto`, then here (`second_try`, pipeline._second_try): when the post-training artifact *fails held-out
  verification* although it met the calibration cosine. That happens: EfficientNet-Lite0's static
  INT8 reached worst-sample cosine 0.9954 on its calibration crops (tolerance 0.99) and then
  overturned a decisive top-1 on the held-out ones. The candidate is built again with `--qat`'s
  fine-tuning and verified again on the same held-out samples; it replaces the post-training
  artifact only when it passes. The held-out samples then judged this candidate twice (two tries at
  one test, not a search over them): the manifest says so, as a verification caveat.

No torch here: this module is read by the parent.
"""
from __future__ import annotations

from . import converters
from .converters.qat import MIN_SAMPLES, STEPS  # plain constants: that module imports torch only inside functions


def fine_tunes(candidate) -> bool:
    """An INT8 candidate whose converter `--qat` fine-tunes."""
    return candidate.precision == "int8" and converters.get(candidate.converter).qat


def was_fine_tuned(converter_info: dict) -> bool:
    """Fine-tuning ran for this artifact (--qat, or --precision auto tried it: shipped or not)."""
    q = converter_info.get("quantization") or {}
    tried = q.get("qat") or (q.get("qat_when_missed") or {}).get("qat")
    return bool(tried) and "skipped" not in tried


def second_try(candidate, res: dict) -> tuple[bool, str | None]:
    """(fine-tune and verify again?, why not) for a `--precision auto` build result. The reason is
    None where a second try has nothing to answer (it passed, never ran, crashed, or was already
    fine-tuned), and a sentence for the manifest where it would have helped but cannot run."""
    conv, v = res["converter"], res["verification"]
    if not fine_tunes(candidate) or v["status"] != "failed" or not v.get("metrics") or was_fine_tuned(conv):
        return False, None
    if conv.get("buckets"):
        return False, ("its dims are static buckets: fine-tuning each bucket would multiply the minutes by their "
                       "count; compile --qat does it when asked")
    n = (conv.get("quantization") or {}).get("calibration_samples", 0)
    if n < MIN_SAMPLES:
        return False, (f"{n} calibration sample(s): fine-tuning needs at least {MIN_SAMPLES} (it would fit those "
                       "alone); give --calibration with more representative inputs")
    return True, None


WHY = "the post-training INT8 artifact failed held-out verification"


def _summary(v: dict) -> dict:
    return {"status": v["status"], "reason": v.get("reason", ""), "metrics": v.get("metrics", {})}


def second_try_record(first: dict, second: dict, shipped: str) -> dict:
    """What the converter record keeps: both verifications, which one shipped, and why."""
    q = second["converter"].get("quantization") or {}
    return {"why": f"{WHY}: " + (first["verification"].get("reason") or ""),
            "steps": STEPS, "qat": q.get("qat"), "post_training": _summary(first["verification"]),
            "fine_tuned": _summary(second["verification"]), "shipped": shipped,
            "note": "both were verified on the same held-out samples: the candidate had two tries at one test"}


def caveat(record: dict) -> str:
    return ("passed on its second try: the post-training INT8 artifact failed these held-out samples ("
            + record["post_training"]["reason"][:200] + f"), so --precision auto fine-tuned it ({record['steps']} "
            "steps against the FP32 model on the calibration samples) and verified it again on the same samples")
