"""Start and stop emulated arm64 devices: one sshd per CPU model, inside the cached root.

Each device is an sshd (the root's own arm64 binary, emulated) in a private mount namespace of
its own: /proc, /dev and /sys are mounted into the root only there, and vanish with the last
process of the device, so nothing is left mounted on the host even after a crash. It listens on
127.0.0.1 only, key login as the root's `edgekit` user only, and sets QEMU_CPU for every session
(sshd wipes the environment; without it a session would fall back to QEMU's `max` CPU). Under
QEMU 7.2 the guest reads the host's /proc/cpuinfo (x86: onnxruntime's cpuinfo then crashes on
import), so each device sees a /proc/cpuinfo describing its own Arm CPU instead.

State: cache_dir()/devices/<cpu>.json (pid, port, url); `stop` ends exactly the processes of
that device's namespace.
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..errors import RemoteDeviceError, UsageError
from . import CPUS, ArmCpu, cache_dir
from .root import USER, _say, build_root, emulator_version, refresh_runtimes

# Guest-side probe, run over ssh after start: what the running device reports, read by itself.
_PROBE = ("import ctypes,json,os,platform;g=ctypes.CDLL(None).getauxval;g.restype=ctypes.c_ulong;"
          "print(json.dumps({'machine':platform.machine(),'hwcap':g(16),'hwcap2':g(26),"
          "'qemu_cpu':os.environ.get('QEMU_CPU'),'python':platform.python_version()}))")
HWCAP_ASIMDDP, HWCAP_SVE, HWCAP2_I8MM, HWCAP2_SME = 1 << 20, 1 << 22, 1 << 13, 1 << 23


def devices_dir() -> Path:
    return cache_dir() / "devices"


@contextlib.contextmanager
def cache_lock():
    """One `device start`/`stop` (and root build) at a time on this cache: an advisory lock file."""
    import fcntl

    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpuinfo(cpu: ArmCpu) -> str:
    """/proc/cpuinfo as an arm64 Linux kernel writes it for this core (QEMU 7.2 shows the host's)."""
    block = (f"BogoMIPS\t: 50.00\nFeatures\t: {cpu.features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: 0x1\nCPU part\t: {cpu.part}\nCPU revision\t: 0\n")
    return "".join(f"processor\t: {i}\n{block}\n" for i in range(os.cpu_count() or 1))


def _config(cpu: ArmCpu, port: int) -> str:
    return "\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1",  # never anything but this machine's loopback
        "HostKey /etc/ssh/ssh_host_ed25519_key", "PidFile none", "UsePAM no",
        "PubkeyAuthentication yes", "AuthorizedKeysFile .ssh/authorized_keys", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin no", f"AllowUsers {USER}",
        "DisableForwarding yes", "PermitTunnel no", "Subsystem sftp internal-sftp",
        f"SetEnv QEMU_CPU={cpu.qemu} PATH=/usr/local/bin:/usr/bin:/bin", ""])


def _alive(state: dict) -> bool:
    """The recorded pid is still this device's sshd (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{state['pid']}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    try:
        same_root = os.readlink(f"/proc/{state['pid']}/root") == state["root"]
    except OSError:
        same_root = False
    return "sshd" in cmdline and state["config"] in cmdline and same_root


def running() -> list[dict]:
    """The devices started by `device start` that still run."""
    out = []
    for f in sorted(devices_dir().glob("*.json")) if devices_dir().is_dir() else []:
        try:
            state = json.loads(f.read_text())
        except (OSError, ValueError):
            continue  # not a state file of ours (written atomically, so never half of one)
        if _alive(state):
            out.append(state)
        else:
            f.unlink(missing_ok=True)  # a device that died (reboot, kill): its record goes too
    return out


def url_of(state: dict) -> str:
    c = cache_dir()
    return f"ssh://{USER}@127.0.0.1:{state['port']}?key={c / 'id_ed25519'}&known_hosts={c / 'known_hosts'}"


def _probe(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> dict:
    """Wait until the device answers over ssh; what it reports about itself. An sshd that exits
    (its port taken meanwhile, a bad config) is reported with its own last words."""
    from ..remote import _ssh, parse_device

    dev = parse_device(url)
    cmd = _ssh(dev, None, 5, None, ()) + ["python3 -c " + shlex.quote(_PROBE)]
    deadline, last = time.time() + timeout_s, ""
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RemoteDeviceError(f"the emulated device's sshd exited ({proc.returncode}): "
                                    f"{(log.read_text().strip().splitlines() or ['no output'])[-1][:300]} (log: {log})")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            break
        if p.returncode == 0 and p.stdout.strip():
            return json.loads(p.stdout.strip().splitlines()[-1])
        last = (p.stderr.strip().splitlines() or [""])[-1]
        time.sleep(1)
    raise RemoteDeviceError(f"the emulated device on {url} did not answer within {timeout_s:.0f} s: {last} (log: {log})")


def check_pinning(cpu: ArmCpu, seen: dict) -> list[str]:
    """What the guest sees against what the CPU model promises: dot product, SVE, I8MM, SME."""
    want_dot, want_sve = "asimddp" in cpu.features.split(), "sve" in cpu.features.split()
    got = {"asimddp": bool(seen["hwcap"] & HWCAP_ASIMDDP), "sve": bool(seen["hwcap"] & HWCAP_SVE),
           "i8mm": bool(seen["hwcap2"] & HWCAP2_I8MM), "sme": bool(seen["hwcap2"] & HWCAP2_SME)}
    bad = []
    if seen.get("machine") != "aarch64":
        bad.append(f"machine is {seen.get('machine')!r}, not aarch64")
    if seen.get("qemu_cpu") != cpu.qemu:
        bad.append(f"sessions run with QEMU_CPU={seen.get('qemu_cpu')!r}, not {cpu.qemu!r}")
    if got["asimddp"] != want_dot or got["sve"] != want_sve:
        bad.append(f"the guest's CPU features {got} do not match {cpu.qemu}")
    return bad


def features_seen(seen: dict) -> list[str]:
    return [n for n, on in (("asimddp", seen["hwcap"] & HWCAP_ASIMDDP), ("sve", seen["hwcap"] & HWCAP_SVE),
                            ("i8mm", seen["hwcap2"] & HWCAP2_I8MM), ("sme", seen["hwcap2"] & HWCAP2_SME)) if on]


def _write_state(state: dict) -> None:
    path = devices_dir() / f"{state['cpu']}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)


def start(cpu: ArmCpu) -> dict:
    """Build the root if needed, then start (or find running) the device for this CPU model. One
    `device` command at a time works on the cache (a lock), so two starts never race."""
    with cache_lock():
        return _start(cpu)


def _start(cpu: ArmCpu) -> dict:
    t0 = time.time()
    root = build_root()
    states = running()
    for state in states:
        if state["cpu"] == cpu.qemu:
            _say(f"the emulated arm64 device ({cpu.qemu}) already runs (pid {state['pid']})")
            return state
    if not states:  # never swap the runtimes under a running device
        refresh_runtimes(root)
    ddir = devices_dir()
    ddir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = f"/etc/ssh/edgekit-{cpu.qemu}.conf"
    (root / config.lstrip("/")).write_text(_config(cpu, port))
    fake = ddir / f"cpuinfo-{cpu.qemu}"
    fake.write_text(_cpuinfo(cpu))
    hostkey = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    known = cache_dir() / "known_hosts"
    others = [ln for ln in (known.read_text().splitlines() if known.is_file() else [])
              if not ln.startswith(f"[127.0.0.1]:{port} ")]
    known.write_text("\n".join(others + [f"[127.0.0.1]:{port} {hostkey[0]} {hostkey[1]}"]) + "\n")
    # The namespace's mounts exist only for this device's processes: nothing to unmount, ever.
    script = ('set -e; R="$1"; mount -t proc proc "$R/proc"; mount --bind "$2" "$R/proc/cpuinfo"; '
              'mount --rbind /dev "$R/dev"; mount --rbind /sys "$R/sys"; '
              'exec chroot "$R" /usr/sbin/sshd -D -e -f "$3"')
    log = ddir / f"{cpu.qemu}.log"
    env = {"QEMU_CPU": cpu.qemu, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    with open(log, "w") as f:  # the device outlives this command by design: its own session, no death signal
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
                                 str(root), str(fake), config], stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    state = {"cpu": cpu.qemu, "pid": proc.pid, "port": port, "config": config, "root": str(root),
             "emulator": emulator_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    state["url"] = url_of(state)
    _write_state(state)
    try:
        seen = _probe(state["url"], proc, log, 90)
        bad = check_pinning(cpu, seen)
        if bad:
            raise RemoteDeviceError(f"the emulated device does not run the CPU it was started with: {'; '.join(bad)}")
    except BaseException:
        stop_one(state)
        raise
    state.update(features=features_seen(seen), python=seen["python"], start_s=round(time.time() - t0, 1))
    _write_state(state)
    return state


def _namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def stop_one(state: dict) -> int:
    """End every process of this device's mount namespace (its sshd and any session, forked ones
    included: scanned again until none is left); returns how many. Only a live, verified device
    (its sshd, its config, its root) names a namespace, and never this command's own."""
    ns, mine = (_namespace(state["pid"]) if _alive(state) else None), _namespace(os.getpid())
    if not ns or ns == mine:
        (devices_dir() / f"{state['cpu']}.json").unlink(missing_ok=True)
        return 0
    ended: set[int] = set()
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _namespace(int(p)) == ns]
        if not pids:
            break
        for pid in pids:
            if _namespace(pid) != ns:  # re-checked at the signal: a pid freed meanwhile is someone else's
                continue
            try:
                os.kill(pid, sig)
                ended.add(pid)
            except ProcessLookupError:
                pass
            except PermissionError:
                raise UsageError(f"not allowed to stop process {pid} of the emulated device", hint="run it as root, "
                                 "as `device start` was") from None
        deadline = time.time() + 3
        while time.time() < deadline and any(_namespace(p) == ns for p in pids):
            time.sleep(0.1)
    (devices_dir() / f"{state['cpu']}.json").unlink(missing_ok=True)
    return len(ended)


def stop(cpu: str | None) -> list[dict]:
    """Stop the device for this CPU model, or every one `device start` started."""
    with cache_lock():
        return _stop(cpu)


def _stop(cpu: str | None) -> list[dict]:
    states = running()
    chosen = [s for s in states if cpu is None or s["cpu"] == cpu]
    if cpu and not chosen:
        raise UsageError(f"no emulated arm64 device with CPU {cpu!r} runs",
                         hint=("running: " + ", ".join(s["cpu"] for s in states)) if states
                         else "none runs; start one: python -m edgekit device start arm64")
    for s in chosen:
        s["stopped_processes"] = stop_one(s)
    return chosen


__all__ = ["start", "stop", "running", "CPUS"]
