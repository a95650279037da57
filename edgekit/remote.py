"""Benchmark and verify a bundle on a remote device over SSH (`ssh://user@host[:port][?key=PATH]`).

One `ssh` session per call (the system client, BatchMode: it never prompts). A tar holding the
bundle's listed files and edgekit's own .py files (the device needs only Python, numpy and the
runtime) streams into a fresh `mktemp -d` folder on the device, into `stage/`; its checksums are
checked there and only then is `stage/` renamed to `run/`, so nothing half-copied is ever
executed. The device-side runner (edgekit.remote_runner) checks every bundle file against the
manifest's sha256 before it imports a runtime, prints one JSON line, and the folder is removed
when the session ends. Failures become one-line errors (RemoteDeviceError, exit 10, for the
connection and the device; ToolchainMissing / BundleError for what the runner reports).
"""
from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from . import errors
from .errors import RemoteDeviceError, ToolchainMissing, UsageError

RESULT_MARK = "EDGEKIT-RESULT "  # the runner's result line (edgekit.remote_runner)
SUMS = "SHA256SUMS.json"
DEFAULT_ROOT = "~/.cache/edgekit-remote"
_SAFE = re.compile(r"^[A-Za-z0-9._%:-]+$")  # user/host: nothing ssh could read as an option or a shell word

# Runs in the stage folder with the device's Python before anything is renamed or executed;
# Python-2-safe syntax up to the version check so an old interpreter gets a clear message.
_CHECK = """import hashlib, json, sys
if sys.version_info < (3, 9):
    sys.stderr.write("edgekit-remote: python-too-old %d.%d\\n" % sys.version_info[:2]); sys.exit(94)
bad = []
for name, digest in json.load(open("SHA256SUMS.json")).items():
    h = hashlib.sha256()
    with open(name, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    bad += [] if h.hexdigest() == digest else [name]
if bad:
    sys.stderr.write("edgekit-remote: checksum-mismatch %s\\n" % " ".join(bad)); sys.exit(93)
"""

# Exit codes of the remote script (below) for failures before the runner starts.
_PY_MISSING, _MKDIR_FAILED, _COPY_FAILED, _CHECKSUM, _PY_OLD = 90, 91, 92, 93, 94


@dataclass(frozen=True)
class Device:
    host: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    known_hosts: str | None = None  # this device's own known_hosts file (an emulated device prints one)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user + '@' if self.user else ''}{host}{f':{self.port}' if self.port else ''}"

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def parse_device(url: str) -> Device:
    """`ssh://user@host[:port][?key=/path/to/key][&known_hosts=/path]` -> Device; anything else raises UsageError."""
    form = "expected ssh://user@host[:port] (optionally ?key=/path/to/private_key&known_hosts=/path/to/file)"
    u = urllib.parse.urlsplit(url.strip())
    if u.scheme != "ssh" or not u.hostname:
        raise UsageError(f"bad device {url!r}: {form}")
    try:
        port = u.port
        if port == 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"bad device {url!r}: the port must be a number 1-65535") from None
    if u.password is not None or u.path not in ("", "/") or u.fragment:
        raise UsageError(f"bad device {url!r}: no password, path or fragment allowed; {form}")
    user = urllib.parse.unquote(u.username) if u.username else None
    for part in (user, u.hostname):
        if part is not None and (not _SAFE.match(part) or part.startswith("-")):
            raise UsageError(f"bad device {url!r}: {part!r} is not a valid user or host name")
    query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    if set(query) - {"key", "known_hosts"} or any(len(v) != 1 or not v[0] for v in query.values()):
        raise UsageError(f"bad device {url!r}: the only query parameters are key=/path/to/private_key and "
                         "known_hosts=/path/to/file")
    return Device(u.hostname, user, port, query["key"][0] if "key" in query else None,
                  query["known_hosts"][0] if "known_hosts" in query else None)


def device_warnings(device: dict) -> list[str]:
    """Why the device's numbers may not be trusted: throttling, clock scaling, a busy machine."""
    w = []
    govs = device.get("governors") or []
    if any(g != "performance" for g in govs):
        w.append(f"CPU frequency governor is {'/'.join(govs)}, not 'performance': clocks may change during "
                 "the run (cpupower frequency-set -g performance)")
    before, after = device.get("temps_c_before") or {}, device.get("temps_c_after") or {}
    rises = {z: after[z] - before[z] for z in before if z in after}
    hot = max(after.values(), default=0.0)
    if rises and max(rises.values()) >= 5.0 or hot >= 80.0:
        z = max(rises, key=rises.get) if rises else ""
        w.append(f"possible thermal throttling: {z} rose {rises.get(z, 0):.1f} C, hottest zone {hot:.1f} C after the run")
    tb, ta = device.get("throttle_count_before"), device.get("throttle_count_after")
    if tb is not None and ta is not None and ta > tb:
        w.append(f"the CPU reported {ta - tb} thermal throttle events during the run")
    cores, load = device.get("logical_cpus") or 1, (device.get("loadavg_before") or [0.0])[0]
    if load > cores * 0.5:
        w.append(f"busy machine: load average {load:.2f} before the run on {cores} cores (> {cores * 0.5:g}); "
                 "other work competes for the CPU")
    return w


def _pack(bundle_dir: Path, out: Path) -> None:
    """Tar of the bundle's listed files + edgekit's .py files + their sha256 (checked on the device)."""
    from .bundle import open_bundle, sha256_file
    from .manifest import MANIFEST

    manifest = open_bundle(bundle_dir, check_hashes=False)  # structure here; hashes on the device
    files = {f"bundle/{MANIFEST}": bundle_dir / MANIFEST}
    for a in manifest.artifacts:  # a folder artifact (.mlpackage, TF.js) travels file by file, each summed
        p = bundle_dir / a.path
        inner = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        files.update({f"bundle/{f.relative_to(bundle_dir).as_posix()}": f for f in inner})
    if manifest.selftest:
        files[f"bundle/{manifest.selftest['path']}"] = bundle_dir / manifest.selftest["path"]
    pkg = Path(__file__).resolve().parent
    files.update({f"pkg/edgekit/{p.relative_to(pkg)}": p for p in sorted(pkg.rglob("*.py"))
                  if "__pycache__" not in p.parts})
    # the target profiles and converters live beside the package (pyproject's package-dir): `build` on the
    # device re-ranks by the profile and may build a deferred step (a TensorRT engine)
    import edgekit.converters
    import edgekit.targets

    for sub in (edgekit.targets, edgekit.converters):
        d = Path(sub.__file__).resolve().parent
        files.update({f"pkg/edgekit/{sub.__name__.split('.')[-1]}/{p.relative_to(d)}": p for p in sorted(d.rglob("*.py"))
                      if "__pycache__" not in p.parts})
    sums = {name: sha256_file(p) for name, p in files.items()}
    (out.parent / SUMS).write_text(json.dumps(sums))
    files[SUMS] = out.parent / SUMS

    def owner(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    with tarfile.open(out, "w") as tf:
        for name, p in files.items():
            tf.add(str(p), arcname=name, recursive=False, filter=owner)


def _script(root: str, python: str, args: dict, timeout_s: float) -> str:
    """The remote shell script: fresh dir, copy into stage/, check, rename, run, always clean up."""
    root_sh = '"$HOME"/' + shlex.quote(root[2:]) if root.startswith("~/") else shlex.quote(root)
    blob = base64.b64encode(json.dumps(args).encode()).decode()
    return f"""R={root_sh}; PY={shlex.quote(python)}
command -v "$PY" >/dev/null 2>&1 || {{ echo "edgekit-remote: python-missing" >&2; exit {_PY_MISSING}; }}
mkdir -p "$R" && d=$(mktemp -d "$R/run.XXXXXX") || {{ echo "edgekit-remote: mkdir-failed" >&2; exit {_MKDIR_FAILED}; }}
trap 'rm -rf "$d"' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM
echo "edgekit-remote: dir=$d" >&2
mkdir "$d/stage" && tar -xf - -C "$d/stage" || {{ echo "edgekit-remote: copy-failed" >&2; exit {_COPY_FAILED}; }}
(cd "$d/stage" && "$PY" -c {shlex.quote(_CHECK)}) || {{ s=$?; [ $s = {_PY_OLD} ] || s={_CHECKSUM}; exit $s; }}
mv "$d/stage" "$d/run" || exit {_COPY_FAILED}
T=; command -v timeout >/dev/null 2>&1 && T="timeout -k 5 {int(timeout_s) + 1}"
cd "$d/run" && PYTHONPATH="$d/run/pkg" PYTHONDONTWRITEBYTECODE=1 $T "$PY" -m edgekit.remote_runner {blob}
"""


def _ssh(dev: Device, identity, connect_timeout_s, known_hosts, ssh_options) -> list[str]:
    # the caller's options first: for ssh the first value given for an option wins
    cmd = ["ssh", *ssh_options, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
           "-o", f"ConnectTimeout={max(1, int(connect_timeout_s))}", "-o", "LogLevel=ERROR",
           # a device that vanishes mid-run is noticed in ~15 s, not at the overall timeout
           "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    key = identity or dev.key
    if key:  # only this key: a default key or an agent must not decide whether auth works
        cmd += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    if dev.port:
        cmd += ["-p", str(dev.port)]
    if known_hosts or dev.known_hosts:
        cmd += ["-o", f"UserKnownHostsFile={known_hosts or dev.known_hosts}"]
    return cmd + ["--", dev.destination]


def _ssh_error(dev: Device, err: str) -> RemoteDeviceError:
    """The ssh client's own failure (exit 255) as one line."""
    where = f"{dev.host}:{dev.port or 22}"
    if "Connection refused" in err:
        return RemoteDeviceError(f"connection refused by {where}: no SSH server listens there ({dev.url})",
                                 hint="check the host and port (ssh://user@host:PORT) and that sshd runs on the device")
    if "Permission denied" in err or "Too many authentication failures" in err:
        return RemoteDeviceError(f"authentication failed for {dev.destination} on {where}: the server did not accept the key",
                                 hint="put the public key in the device's ~/.ssh/authorized_keys, or pass the right "
                                      "key (?key=PATH); edgekit never prompts for a password")
    if "timed out" in err.lower():
        return RemoteDeviceError(f"timed out connecting to {where} ({err.strip().splitlines()[-1]})",
                                 hint="is the device on and reachable, and is this its SSH port?")
    if "Host key verification failed" in err or "IDENTIFICATION HAS CHANGED" in err:
        return RemoteDeviceError(f"host key of {where} does not match the one in known_hosts; refused",
                                 hint=f"if the device was reinstalled: ssh-keygen -R '[{dev.host}]:{dev.port or 22}'")
    last = next((ln for ln in reversed(err.strip().splitlines()) if ln.strip()), "no message")
    return RemoteDeviceError(f"ssh to {dev.url} failed: {last}")


def _call(device_url: str, bundle_dir, args: dict, identity, timeout_s: float, device_python: str,
          remote_root: str | None, connect_timeout_s: float, known_hosts, ssh_options) -> tuple[object, dict]:
    dev = parse_device(device_url)
    bundle_dir = Path(bundle_dir)
    args = {**args, "bundle": "bundle"}  # relative to the runner's working dir, run/
    base = _ssh(dev, identity, connect_timeout_s, known_hosts, ssh_options)
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
        tar = Path(tmp) / "payload.tar"
        _pack(bundle_dir, tar)
        size = tar.stat().st_size
        cmd = base + ["sh -c " + shlex.quote(_script(remote_root or DEFAULT_ROOT, device_python, args, timeout_s))]
        try:
            with open(tar, "rb") as stdin:
                p = subprocess.run(cmd, stdin=stdin, capture_output=True, timeout=timeout_s)
        except FileNotFoundError:
            raise ToolchainMissing("the ssh client is not installed here", hint="apt-get install openssh-client") from None
        except subprocess.TimeoutExpired as e:
            _cleanup(base, (e.stderr or b"").decode(errors="replace"))
            raise RemoteDeviceError(f"timed out after {timeout_s:g} s on {dev.url} (copy + run); stopped",
                                    hint="raise --device-timeout (timeout_s=) for slow or emulated devices and long benchmarks") from None
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if "No space left on device" in err:
        raise RemoteDeviceError(f"disk full on {dev.url}: No space left on device while copying {size} bytes "
                                f"under {remote_root or DEFAULT_ROOT}; nothing was run",
                                hint="free space on the device, or pass remote_root= a folder on a larger disk")
    if p.returncode == 255 and RESULT_MARK not in out:
        raise _ssh_error(dev, err)
    if p.returncode == _PY_MISSING:
        raise RemoteDeviceError(f"python {device_python!r} not found on {dev.url}",
                                hint="install Python 3 there (e.g. apt-get install python3 python3-pip) or pass "
                                     "device_python=/path/to/python3")
    if p.returncode == _PY_OLD:
        raise RemoteDeviceError(f"python {device_python!r} on {dev.url} is too old: {_tail(err)}; edgekit needs >= 3.9")
    if p.returncode in (_MKDIR_FAILED, _COPY_FAILED, _CHECKSUM):
        what = {_MKDIR_FAILED: "could not create a work folder", _COPY_FAILED: "copying the bundle failed",
                _CHECKSUM: "the copy arrived corrupted (sha256 mismatch); nothing was run"}[p.returncode]
        raise RemoteDeviceError(f"{what} on {dev.url}: {_tail(err)}")
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith(RESULT_MARK)), None)
    if line is None:
        raise RemoteDeviceError(f"the device runner on {dev.url} exited {p.returncode} without a result: {_tail(err)}")
    res = json.loads(line[len(RESULT_MARK):])
    if "ok" in res:
        return res["ok"], res["device"]
    if "crash" in res:
        raise RemoteDeviceError(f"the device runner on {dev.url} failed: {res['crash']}")
    e = res["error"]
    if e["type"] == "ToolchainMissing":
        pkg = e.get("package") or "onnxruntime"
        alt = f"  (or: {e['hint']})" if e.get("hint") and e["hint"] != f"pip install {pkg}" else ""
        exc = ToolchainMissing(f"on {dev.url}: {e['message']}",
                               hint=f"on the device run: {device_python} -m pip install {pkg}{alt}")
    else:
        cls = getattr(errors, e["type"], RemoteDeviceError)
        extra = "; refused on the device before anything ran" if res.get("stage") == "integrity" else ""
        exc = cls(f"on {dev.url}: {e['message']}{extra}", hint=e.get("hint"))
    exc.device_report = res  # stage and runtime modules loaded: what did (not) run there
    raise exc


def _tail(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("edgekit-remote: dir=")]
    return lines[-1] if lines else "no message"


def _cleanup(base: list[str], err: str) -> None:
    """After a local timeout: best effort removal of the remote folder (the remote trap usually does it)."""
    m = re.search(r"edgekit-remote: dir=(\S+)", err)
    if m:
        try:
            subprocess.run(base + ["rm -rf " + shlex.quote(m.group(1))], capture_output=True, timeout=15)
        except (subprocess.TimeoutExpired, OSError):
            pass


def remote_bench(device_url: str, bundle_dir, artifact_id: str | None = None, threads: int | None = 1,
                 warmup_s: float | None = None, min_runs: int | None = None, min_time_s: float | None = None,
                 identity: str | None = None, timeout_s: float | None = None, *, device_python: str = "python3",
                 remote_root: str | None = None, connect_timeout_s: float = 10.0, known_hosts: str | None = None,
                 ssh_options: tuple[str, ...] = ()) -> dict:
    """edgekit.bench.measure's dict, measured on the device, plus "device" (environment before/after)
    and "warnings" (throttling, clock scaling, busy machine). artifact_id None: the primary.
    timeout_s: the whole session's limit, copy included (None: 600 s; verify 300 s, build 900 s)."""
    from .bench import MIN_RUNS, MIN_TIME_S, WARMUP_S

    t0 = time.perf_counter()
    args = {"op": "bench", "artifact_id": artifact_id, "threads": threads,
            "warmup_s": WARMUP_S if warmup_s is None else warmup_s, "min_runs": MIN_RUNS if min_runs is None else min_runs,
            "min_time_s": MIN_TIME_S if min_time_s is None else min_time_s}
    result, device = _call(device_url, bundle_dir, args, identity, timeout_s or 600.0, device_python, remote_root,
                           connect_timeout_s, known_hosts, ssh_options)
    device["url"] = parse_device(device_url).url
    device["session_s"] = round(time.perf_counter() - t0, 2)
    warnings = device_warnings(device)
    if device.get("emulated"):
        warnings.insert(0, f"{measured_on(device)}: these latencies are QEMU's emulation speed and rank nothing on "
                           "any real device; use this device for numerics (verify), not timings")
    return {**result, "measured_on": measured_on(device), "device": device, "warnings": warnings}


def where_of(device: dict) -> str:
    """A result's `where`: "aarch64-emulated" (edgekit's QEMU device: real Arm kernels, emulated CPU) or "device"."""
    return (device.get("emulated") or {}).get("kind", "aarch64-emulated") if device.get("emulated") else "device"


def measured_on(device: dict) -> str:
    """"device ssh://pi@host" or "aarch64-emulated cortex-a76 (QEMU user mode 7.2) via ssh://...": what ran it."""
    emu = device.get("emulated")
    if emu:
        return f"{where_of(device)} {emu['cpu']} ({emu['emulator']}) via {device['url']}"
    return f"device {device['url']}"


def remote_verify(device_url: str, bundle_dir, identity: str | None = None, timeout_s: float | None = None, *,
                  device_python: str = "python3", remote_root: str | None = None, connect_timeout_s: float = 10.0,
                  known_hosts: str | None = None, ssh_options: tuple[str, ...] = ()) -> list[dict]:
    """Each usable artifact's self-test on the device, and each on-device one this device can run (a TVM
    aarch64 module on an aarch64 device): [{artifact, runtime, precision, role, status (passed/failed/
    skipped: its runtime is not on the device; then "skipped" says why), metrics, failures, outputs (the
    device's raw outputs, edgekit.parity), measured_on, where ("device" | "aarch64-emulated"), device}].
    The bundle's sha256 check on the device passed if this returns."""
    result, device = _call(device_url, bundle_dir, {"op": "verify", "outputs": True, "rejected": True}, identity, timeout_s or 300.0,
                           device_python, remote_root, connect_timeout_s, known_hosts, ssh_options)
    device["url"] = parse_device(device_url).url
    return [{**r, "measured_on": measured_on(device), "where": where_of(device), "device": device} for r in result]


def remote_build(device_url: str, bundle_dir, identity: str | None = None, timeout_s: float | None = None, *,
                 device_python: str = "python3", known_hosts: str | None = None) -> tuple[str, list, dict]:
    """`edgekit build` on the device, on a copy of the bundle: (the device's new manifest.json text, its
    result rows, the device record). The caller decides whether to take the manifest."""
    result, device = _call(device_url, bundle_dir, {"op": "build"}, identity, timeout_s or 900.0, device_python, None,
                           10.0, known_hosts, ())
    device["url"] = parse_device(device_url).url
    return result["manifest"], result["rows"], device
