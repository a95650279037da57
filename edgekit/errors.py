"""One error tree for everything a user can cause; each class carries its exit code.

Anything that is not an EdgekitError is a bug in edgekit and keeps its traceback.
The exit codes page (docs/reference/exit-codes.md) is generated from these classes: scripts/gen_reference.py.
"""
from __future__ import annotations

import difflib


class EdgekitError(Exception):
    """A failure the user can act on. `hint` is the next thing to type or try."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(EdgekitError):
    """Unknown target/command/option value."""

    exit_code = 2


class ModelSourceError(EdgekitError):
    """The --model spec cannot be resolved: missing file, bad factory, bad return value."""

    exit_code = 3


class UnsafeModelError(EdgekitError):
    """A model file would run code or reach outside its folder; refused before it runs."""

    exit_code = 4


class ToolchainMissing(EdgekitError):
    """A converter or runtime is not installed; the hint is the exact install command."""

    exit_code = 5


class ConversionError(EdgekitError):
    """A conversion step failed or crashed; the message names the step and its log file."""

    exit_code = 6


class VerificationFailed(EdgekitError):
    """An artifact ran but its outputs are outside the profile's tolerance."""

    exit_code = 7


class BundleError(EdgekitError):
    """A bundle is missing, incomplete, or its files do not match the manifest."""

    exit_code = 8


class InputError(EdgekitError):
    """predict() got inputs with the wrong names, shapes or dtypes."""

    exit_code = 9


class ArtifactFailed(EdgekitError):
    """Strict mode: the active artifact failed and the predictor may not fall back."""

    exit_code = 11


class ReferenceFailed(EdgekitError):
    """The source model itself (the reference) failed, is not repeatable, or gives NaN/Inf on the
    verification inputs: nothing can be verified against it."""

    exit_code = 14


class SignatureError(BundleError):
    """A signature was required and the bundle is unsigned, signed by an untrusted key, or altered."""

    exit_code = 13


# compile succeeded only in part: the profile's preferred artifact failed, a verified fallback is
# the primary now; the manifest's failed_candidates says why.
EXIT_DEGRADED = 12


def did_you_mean(word: str, choices: list[str]) -> str:
    """' (did you mean "x"?)' or '' — a suggestion only, never an auto-correction."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f' (did you mean "{close[0]}"?)' if close else ""


class RemoteDeviceError(EdgekitError):
    """A remote device (ssh://) could not be reached or used: refused, auth, timeout, no python, disk full."""

    exit_code = 10


def root_cause(e: BaseException) -> str:
    """'Outer: innermost cause' in one line without terminal colours: toolchains wrap the useful
    message (e.g. torch.export's data-dependent guard) inside a generic one."""
    import re

    inner = e
    while inner.__cause__ is not None or (inner.__context__ is not None and not inner.__suppress_context__):
        inner = inner.__cause__ or inner.__context__
    def first(x):
        lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(x)).splitlines() if ln.strip()]
        return lines[0][:240] if lines else ""
    msg = f"{type(e).__name__}: {first(e)}"
    if inner is not e:
        msg += f" — caused by {type(inner).__name__}: {first(inner)}"
    return msg
