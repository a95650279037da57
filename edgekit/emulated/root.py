"""Build (once) the Debian 12 arm64 root the emulated device runs, in edgekit.emulated.cache_dir().

Steps, each recorded in `root.partial/.edgekit-steps` so an interrupted build resumes where it stopped:
1. debootstrap's first stage (downloads arm64 .debs: python3, openssh-server) on the host;
2. its second stage inside the root, emulated (dpkg runs arm64 maintainer scripts: the slow part,
   ~9 min on 2 busy cores);
3. the login user `edgekit` with a key made here, and sshd host keys (host tools, no emulation);
4. the device-side runtimes: PyPI's aarch64 wheels, installed by the host's pip into
   /opt/edgekit-site (no emulated pip), pinned to the versions the host's venv has.
The finished root is renamed into place: a root either is complete or is not there.

Debian's own tools do the work (debootstrap, dpkg, pip); edgekit only orders them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ConversionError, ToolchainMissing, UsageError
from . import cache_dir

SUITE = "bookworm"  # Debian 12: Python 3.11, the version the host's cp311 wheels are for
USER, UID = "edgekit", 42424  # the login user inside the root (not root: sessions have no host powers to spare)
SITE = "/opt/edgekit-site"  # the device-side runtimes; a .pth file puts it on python3's path
HOST_APT = "apt-get install qemu-user-static binfmt-support debootstrap  # or scripts/setup-env.sh dev"
# The device's Python packages: the runtimes at the host's pins (pyproject.toml,
# scripts/pip-nodeps-tvm.txt) and the small packages they import at the versions the host's venv
# resolved; tests/test_emulated_device.py keeps both equal to the host's. ExecuTorch is left out:
# its Python runtime imports torch, whose aarch64 PyPI wheel is a CUDA build that needs ~3.3 GB of
# nvidia wheels (../shared/ARM64.md), more than a CI machine should carry for one check.
PACKAGES = {"numpy": "2.4.6", "onnxruntime": "1.32.0", "ai-edge-litert": "2.3.0",
            "apache-tvm": "0.27.0.post1", "apache-tvm-ffi": "0.1.15.post2",
            "typing_extensions": "4.15.0", "ml_dtypes": "0.6.0", "flatbuffers": "25.12.19", "protobuf": "7.36.2",
            "packaging": "26.4", "tqdm": "4.70.1", "backports.strenum": "1.2.8"}
# pip widens no platform tag to older ones, so every manylinux tag up to this one is listed
PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, 37)]


def root_path() -> Path:
    return cache_dir() / "root"


def emulator_version() -> str:
    out = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].replace("qemu-aarch64 version ", "").split(" (")[0] if out else "unknown"


def check_host() -> None:
    """Root, the emulator, debootstrap and a registered binfmt handler: each missing piece named."""
    if os.geteuid() != 0:
        raise UsageError("the emulated arm64 device needs root here (chroot, mount namespaces, binfmt_misc)",
                         hint="run it as root, e.g. in a CI container or with sudo")
    missing = [t for t in ("qemu-aarch64-static", "debootstrap", "unshare", "chroot", "ssh-keygen")
               if not shutil.which(t)]
    if missing:
        raise ToolchainMissing(f"{', '.join(missing)} not found: the emulated arm64 device cannot be built or run",
                               hint=HOST_APT)
    enable_binfmt()


def enable_binfmt() -> None:
    """arm64 ELF files run through QEMU transparently (inside a chroot too) once binfmt_misc knows
    the handler; Debian's binfmt-support registers it with the F flag (the emulator is opened now,
    so it need not exist inside the root). A system-wide kernel setting: what Debian's own
    qemu-user-static package does when binfmt_misc is mounted at install time."""
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "register").exists():
        subprocess.run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(misc)], capture_output=True)
    entry = misc / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not entry.exists() or "enabled" not in entry.read_text():
        raise ToolchainMissing("arm64 programs cannot run here: binfmt_misc has no enabled qemu-aarch64 handler",
                               hint="mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc && "
                                    "update-binfmts --enable qemu-aarch64")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (the only network this kind of machine may reach)."""
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            urls = [w for w in words if w.startswith(("http://", "https://"))]
            if urls and "security" not in urls[0] and ("debian" in urls[0]) and \
                    (line.startswith(("deb ", "URIs:"))):
                return urls[0]
    return "http://deb.debian.org/debian"


def _run(cmd: list[str], log: Path, what: str, env: dict | None = None, timeout: float = 3600) -> None:
    """One build command, its output appended to the build log; it dies with this process."""
    from ..isolate import _die_with_parent, _kill_group

    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, preexec_fn=_die_with_parent)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"{what} ran past {timeout:.0f} s and was stopped; log: {log}") from None
        finally:
            _kill_group(proc)
    if proc.returncode:
        tail = [ln for ln in log.read_text().splitlines() if ln.strip()][-1:] or [""]
        raise ConversionError(f"{what} failed (exit {proc.returncode}): {tail[0][:300]}; log: {log}")


def _say(msg: str) -> None:
    print(f"[edgekit] {msg}", file=sys.stderr, flush=True)


def install_runtimes(root: Path, log: Path) -> dict[str, str]:
    """PyPI's aarch64 wheels into ROOT/opt/edgekit-site, by the host's pip (--no-deps: the list is the
    resolution; pip would evaluate dependency markers for this x86 host otherwise)."""
    pins = dict(PACKAGES)
    site = root / SITE.lstrip("/")
    tmp = site.with_name(site.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-cache-dir",
          "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
          "--abi", "abi3", "--abi", "none", *plat, "--target", str(tmp),
          *[f"{k}=={v}" for k, v in pins.items()]], log, "pip install of the aarch64 wheels")
    shutil.rmtree(tmp / "bin", ignore_errors=True)  # console scripts with this host's interpreter path
    shutil.rmtree(site, ignore_errors=True)
    os.replace(tmp, site)
    pth = root / "usr/lib/python3/dist-packages/edgekit-site.pth"
    pth.write_text(SITE + "\n")
    return pins


def _add_user(root: Path, pub_key: str) -> None:
    """The login user, written into the root's account files (no emulated useradd needed). Its
    password field is '*': no password login, yet not 'locked' (sshd refuses locked accounts)."""
    home = root / "home" / USER
    for name, line in (("passwd", f"{USER}:x:{UID}:{UID}:edgekit device user:/home/{USER}:/bin/sh"),
                       ("group", f"{USER}:x:{UID}:"), ("shadow", f"{USER}:*:19000:0:99999:7:::")):
        f = root / "etc" / name
        lines = [ln for ln in f.read_text().splitlines() if not ln.startswith(f"{USER}:")]
        f.write_text("\n".join(lines + [line]) + "\n")
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "authorized_keys").write_text(pub_key)
    for p in (home, home / ".ssh", home / ".ssh" / "authorized_keys"):
        os.chown(p, UID, UID)
    os.chmod(home, 0o755)  # sshd's StrictModes refuses a key under a group-writable home
    os.chmod(home / ".ssh", 0o700)
    os.chmod(home / ".ssh" / "authorized_keys", 0o600)


def build_root() -> Path:
    """The cached root, built first if it is not there (or not finished). Returns its path."""
    check_host()
    root = root_path()
    if (root / ".edgekit-root.json").is_file():
        return root
    cache = root.parent
    cache.mkdir(parents=True, exist_ok=True)
    part, log = cache / "root.partial", cache / "build.log"
    steps_file = part / ".edgekit-steps"
    done = set(steps_file.read_text().split()) if steps_file.is_file() else set()
    t0 = time.time()
    env = dict(os.environ, QEMU_CPU="cortex-a76", DEBIAN_FRONTEND="noninteractive", LC_ALL="C")

    def step(name: str) -> bool:
        return name not in done

    def finish(name: str) -> None:
        done.add(name)
        steps_file.write_text("\n".join(sorted(done)) + "\n")

    _say(f"building the emulated arm64 root once in {cache} (about 10-15 minutes on 2 cores; log: {log})")
    if step("first-stage"):
        shutil.rmtree(part, ignore_errors=True)
        _say("  debootstrap, first stage (downloads Debian 12 arm64 packages) ...")
        _run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase",
              "--include=python3,openssh-server", SUITE, str(part), debian_mirror()], log, "debootstrap (first stage)",
             env=env)
        finish("first-stage")
    if step("second-stage"):
        # maintainer scripts must not start services inside the root
        rc = part / "usr/sbin/policy-rc.d"
        rc.write_text("#!/bin/sh\nexit 101\n")
        rc.chmod(0o755)
        _say("  debootstrap, second stage (arm64 package scripts, emulated: the slow part) ...")
        try:
            _run(["unshare", "--mount", "--propagation", "private", "--", "chroot", str(part),
                  "/debootstrap/debootstrap", "--second-stage"], log, "debootstrap (second stage)", env=env)
        except BaseException:  # a half-configured root is not safe to configure again: start over next time
            steps_file.unlink(missing_ok=True)
            raise
        finish("second-stage")
    if step("user"):
        key = cache / "id_ed25519"
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-arm64-device", "-f", str(key)], log,
                 "ssh-keygen (client key)")
        for old in (part / "etc/ssh").glob("ssh_host_*"):
            old.unlink()
        _run(["ssh-keygen", "-A", "-f", str(part)], log, "ssh-keygen (host keys)")
        _add_user(part, key.with_suffix(".pub").read_text())
        (part / "run/sshd").mkdir(parents=True, exist_ok=True)
        finish("user")
    if step("runtimes"):
        _say("  device-side runtimes: PyPI aarch64 wheels (onnxruntime, ai-edge-litert, apache-tvm) ...")
        pins = install_runtimes(part, log)
        (part / "etc/edgekit-device.json").write_text(json.dumps(
            {"kind": "aarch64-emulated", "emulator": f"QEMU user mode {emulator_version()}",
             "os": "Debian 12 (bookworm) arm64", "packages": pins}, indent=1))
        finish("runtimes")
    record = {"built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(time.time() - t0),
              "emulator": emulator_version(), "suite": SUITE}
    (part / ".edgekit-root.json").write_text(json.dumps(record, indent=1))
    if root.exists():  # an unfinished root of an older layout: never merged into
        shutil.rmtree(root)
    os.replace(part, root)
    _say(f"  root ready in {record['seconds']} s: {root}")
    return root


def refresh_runtimes(root: Path) -> None:
    """A root built with other pins gets the current ones (host pip, seconds): the device's runtimes
    always match the host's."""
    marker = root / "etc/edgekit-device.json"
    info = json.loads(marker.read_text())
    if info.get("packages") == PACKAGES:
        return
    _say("  the device's runtimes differ from the host's pins: reinstalling them ...")
    info["packages"] = install_runtimes(root, root.parent / "build.log")
    marker.write_text(json.dumps(info, indent=1))
