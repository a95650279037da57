"""What a bundle claims about an artifact must be what the artifact is.

Run by `compile` on the built artifacts, before roles are assigned:

- **Precision comes from the file.** An artifact labelled int8 whose converter found no quantized
  tensor in it, or whose bytes are identical to an artifact of another precision, is not what its
  label says:
  it is rejected with that reason (an "executorch-int8" byte-identical to "executorch-fp32" once
  shipped as INT8 with "weights int8 per-channel symmetric").
- **A degenerate reference** (edgekit.reference) makes every artifact's verification carry a caveat.
- **Made-up data proves nothing about accuracy.** When the held-out inputs were random (no real
  data was given), a quantized artifact's agreement with the reference says little about its
  accuracy on real inputs (INT8 "passed" at cosine 0.999 on random images and agreed with FP32 on
  81-86 % of real photos). Such an artifact keeps its measurements, carries the caveat, and is
  ranked after every float artifact, so it is never the primary on made-up data.
"""
from __future__ import annotations

QUANTIZED = ("int8",)
RANDOM_DATA_CAVEAT = ("accuracy not verified: the held-out inputs were made up (random), and a quantized "
                      "artifact's agreement on them says little about real inputs; ranked after the float artifacts")
REAL_DATA_HINT = ("give real held-out inputs (a factory's verification_inputs) and real calibration data "
                  "(--calibration) to let a quantized artifact lead")


def quantized_tensor_count(converter: dict) -> int | None:
    """What the converter counted in the file it wrote, or None when it does not count."""
    q = converter.get("quantization")
    for d in (q if isinstance(q, dict) else {}, converter):
        if isinstance(d.get("quantized_tensors"), int):
            return d["quantized_tensors"]
    return None


def _reject(a, reason: str) -> None:
    a.verification.status = "failed"
    a.verification.reason = reason + (f"; {a.verification.reason}" if a.verification.reason else "")


def check_claims(artifacts: list, reference_check: dict | None, verify_data: str) -> tuple[list[str], list[str]]:
    """Apply the checks above in place; return (lines to tell the user, ids ranked down for random data)."""
    notes: list[str] = []
    by_bytes: dict[str, list] = {}
    for a in artifacts:
        by_bytes.setdefault(a.sha256, []).append(a)
    for same in by_bytes.values():
        if len({a.precision for a in same}) < 2:  # e.g. a fused and a plain ONNX graph with nothing to fuse
            continue
        keep = next((a for a in same if a.precision == "fp32"), same[0])  # the label identical bytes can honestly carry
        for a in same:
            if a.precision != keep.precision:
                _reject(a, f"byte-identical to {keep.id}: the {a.precision} conversion did not change the file, so "
                           f"its precision label would be false")
                notes.append(f"{a.id}: rejected, byte-identical to {keep.id}")
    for a in artifacts:
        if a.precision in QUANTIZED and a.verification.status != "failed" and quantized_tensor_count(a.converter) == 0:
            _reject(a, f"labelled {a.precision} but the converter found no quantized tensor in the file")
            notes.append(f"{a.id}: rejected, no quantized tensor in the file")
    if reference_check:
        for a in artifacts:
            a.verification.caveats.append(reference_check["caveat"])
        notes.append(f"warning: {reference_check['caveat']}")
    demoted = []
    if verify_data == "random":
        for a in artifacts:
            if a.precision in QUANTIZED and a.verification.status == "passed":
                a.verification.caveats.append(RANDOM_DATA_CAVEAT)
                demoted.append(a.id)
        if demoted:
            notes.append(f"note: {', '.join(demoted)} checked on made-up inputs only: accuracy not verified, ranked "
                         f"after the float artifacts; {REAL_DATA_HINT}")
    return notes, demoted
