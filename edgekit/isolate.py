"""Run one pipeline step in a child Python process.

Native toolchains crash (a LiteRT interpreter aborted with SIGABRT on a converted model here);
a crash in the child becomes a ConversionError that names the step, the signal and the log file,
and the parent carries on with the other candidates. The child's stdout/stderr go to that log,
so the terminal stays readable. User errors raised in the child (e.g. UnsafeModelError) come
back as the same error class with the same exit code.

    python -m edgekit.isolate MODULE:FUNCTION ARGS.json RESULT.json
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from . import errors
from .errors import ConversionError, EdgekitError

DEFAULT_TIMEOUT_S = 3600.0


def run_step(step: str, func: str, args: dict, log_dir: Path, timeout: float | None = DEFAULT_TIMEOUT_S,
             stderr_to_terminal: bool = False):
    """Run `module:function(**args)` in a child Python; return its JSON result (see module doc).
    stderr_to_terminal: the step's progress lines (stderr) reach the user; stdout still goes to the log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{step}.log"
    args_path, result_path = log_dir / f"{step}.args.json", log_dir / f"{step}.result.json"
    args_path.write_text(json.dumps(args))
    result_path.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", EDGEKIT_PARENT_PID=str(os.getpid()))
    cmd = [sys.executable, "-m", "edgekit.isolate", func, str(args_path), str(result_path)]
    with open(log, "w") as f:
        # The step gets a process group of its own (so it and everything it starts can be stopped
        # together) and dies with this process (PR_SET_PDEATHSIG): a killed compile leaves no
        # step behind still writing into its staging folder.
        proc = subprocess.Popen(cmd, stdout=f, stderr=None if stderr_to_terminal else subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"step '{step}' ran past its {timeout:.0f} s limit and was stopped; log: {log}") from None
        finally:  # normal exit, timeout, Ctrl-C or any error here: nothing of the step outlives it
            _kill_group(proc)
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        raise ConversionError(f"step '{step}' crashed: the process was killed by {sig} "
                              f"(a native toolchain crash, not a Python error); log: {log}",
                              hint="the other candidates of the target are unaffected; see the log for the last "
                                   "thing the toolchain printed")
    if result and "error" in result:
        e = result["error"]
        cls = getattr(errors, e["type"], ConversionError)
        raise cls(e["message"] + (f" (log: {log})" if cls is ConversionError else ""), hint=e.get("hint"))
    if result and "crash" in result:
        raise ConversionError(f"step '{step}' failed: {result['crash']}; full traceback in {log}")
    if proc.returncode != 0 or result is None:
        raise ConversionError(f"step '{step}' exited with status {proc.returncode} and no result; log: {log}")
    return result["ok"]


def _die_with_parent() -> None:
    """In the forked child, before exec: SIGTERM when the parent dies (Linux), and if the parent is
    already gone (it died before this ran), exit now."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the process group kill in run_step still applies
        return
    if os.getppid() == 1:
        os._exit(1)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _stop_on_parent_death(signum, frame) -> None:
    """The parent died (PDEATHSIG) or asked us to stop: take the whole step down, grandchildren (a
    toolchain's own subprocesses) included, so nothing keeps writing into the staging folder."""
    os.killpg(0, signal.SIGKILL)


def _child(func: str, args_path: str, result_path: str) -> int:
    module, _, name = func.partition(":")
    args = json.loads(Path(args_path).read_text())
    t0 = time.perf_counter()
    try:
        out = {"ok": getattr(importlib.import_module(module), name)(**args)}
        code = 0
    except EdgekitError as e:
        out = {"error": {"type": type(e).__name__, "message": e.message, "hint": e.hint}}
        code = 1
    except Exception as e:  # a toolchain's Python error: keep the traceback in the log
        traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0][:400]
        out = {"crash": f"{type(e).__name__}: {first}"}
        code = 1
    print(f"[edgekit.isolate] {func} finished in {time.perf_counter() - t0:.2f} s", flush=True)
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, result_path)
    return code


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_on_parent_death)
    parent = os.environ.get("EDGEKIT_PARENT_PID")
    if parent and os.getppid() != int(parent):  # the parent died between fork and here
        sys.exit(1)
    sys.exit(_child(*sys.argv[1:4]))
