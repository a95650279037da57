"""edgekit.remote against a REAL OpenSSH server the tests start on 127.0.0.1 (throwaway keys).

The "device" is this machine as root; its Python is the project's venv (the system python has
no numpy/onnxruntime), passed as device_python. Each test is one real ssh session.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgekit.errors import BundleError, RemoteDeviceError, ToolchainMissing, UsageError
from edgekit.remote import parse_device, remote_bench, remote_verify
from conftest import MOBILE, needs

SSHD = "/usr/sbin/sshd"
DEVICE_PY = sys.executable  # the venv's python: numpy + onnxruntime
FAST = {"warmup_s": 0.05, "min_runs": 20, "min_time_s": 0.2}
pytestmark = [pytest.mark.skipif(
    not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen")),
    reason="OpenSSH server/client missing: apt-get install openssh-server openssh-client"), pytest.mark.sshd, pytest.mark.onnxruntime]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """Start sshd -D on a free port; yield connection settings; stop it."""
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root on 127.0.0.1; run the tests as root")
    d = tmp_path_factory.mktemp("sshd")
    host_key, client, stranger = keygen(d / "host_ed25519"), keygen(d / "client"), keygen(d / "stranger")
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = free_port()
    cfg = d / "sshd_config"
    cfg.write_text(f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\nAuthorizedKeysFile {d}/authorized_keys\n"
                   f"UsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\nPermitRootLogin yes\n"
                   "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n")
    os.makedirs("/run/sshd", exist_ok=True)  # privilege-separation dir sshd insists on
    subprocess.run([SSHD, "-t", "-f", str(cfg)], check=True)
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while True:  # ready when it speaks its banner
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")
        time.sleep(0.1)
    root = d / "remote-root"  # the device's work dirs live here, so cleanup can be checked
    kw = {"identity": str(client), "known_hosts": str(d / "known_hosts"), "device_python": DEVICE_PY,
          "remote_root": str(root), "connect_timeout_s": 5, "timeout_s": 120}
    yield {"url": f"ssh://root@127.0.0.1:{port}", "kw": kw, "stranger": str(stranger), "root": root, "dir": d}
    proc.terminate()
    proc.wait(10)
    log.close()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_parse_device():
    assert parse_device("ssh://pi@rpi.local:2222?key=/k").port == 2222
    for bad in ("http://pi@h", "ssh://pi@h:70000", "ssh://-oProxyCommand=x@h", "ssh://pi@h/p", "ssh://pi@h?x=1"):
        with pytest.raises(UsageError):
            parse_device(bad)


def test_remote_bench_same_json_as_local(sshd, digits_bundle):
    from edgekit.bench import measure
    from edgekit.manifest import MANIFEST
    import json

    aid = json.loads((digits_bundle / MANIFEST).read_text())["artifacts"][0]["id"]
    local = measure(str(digits_bundle), aid, 1, **FAST)
    remote = remote_bench(sshd["url"], digits_bundle, aid, 1, **FAST, **sshd["kw"])
    assert set(remote) == set(local) | {"device", "warnings"}
    assert set(remote["env"]) == set(local["env"]) and set(remote["latency_ms"]) == set(local["latency_ms"])
    lat = remote["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and remote["runs"] >= FAST["min_runs"]
    assert remote["measured_on"] == f"device {sshd['url']}"
    dev = remote["device"]
    for k in ("cpu_model", "governor", "temps_c_before", "temps_c_after", "loadavg_before", "loadavg_after"):
        assert k in dev
    assert dev["edgekit_path"].startswith(str(sshd["root"]))  # ran the copied runner, not this checkout
    assert isinstance(remote["warnings"], list)
    assert leftovers(sshd["root"]) == []  # the remote folder was removed


def test_remote_verify_passes(sshd, digits_bundle):
    results = remote_verify(sshd["url"], digits_bundle, **sshd["kw"])
    assert results and all(r["status"] == "passed" and not r["failures"] for r in results)
    assert all(r["metrics"] and r["measured_on"].startswith("device ssh://") for r in results)


def test_connection_refused(sshd, digits_bundle):
    with pytest.raises(RemoteDeviceError, match="connection refused") as e:
        remote_verify(f"ssh://root@127.0.0.1:{free_port()}", digits_bundle, **sshd["kw"])
    assert e.value.exit_code == 10


def test_authentication_failure(sshd, digits_bundle):
    kw = {**sshd["kw"], "identity": sshd["stranger"]}
    with pytest.raises(RemoteDeviceError, match="authentication failed") as e:
        remote_verify(sshd["url"], digits_bundle, **kw)
    assert e.value.exit_code == 10


def python_without_onnxruntime(tmp: Path) -> str:
    """The system python3 if it has numpy but no onnxruntime; else a bare venv with numpy linked in."""
    probe = "import importlib.util as u, sys; print(sys.executable if u.find_spec('numpy') and not u.find_spec('onnxruntime') else '')"
    if shutil.which("python3"):
        exe = subprocess.run(["python3", "-c", probe], capture_output=True, text=True).stdout.strip()
        if exe:
            return exe
    venv = tmp / "no-ort"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    import numpy

    src = Path(numpy.__file__).parent.parent
    dst = next((venv / "lib").glob("python3*/site-packages"))
    for p in src.iterdir():
        if p.name == "numpy" or p.name.startswith(("numpy-", "numpy.libs")):
            (dst / p.name).symlink_to(p)
    return str(venv / "bin" / "python")


def test_runtime_missing_names_install_command(sshd, digits_bundle, tmp_path):
    kw = {**sshd["kw"], "device_python": python_without_onnxruntime(tmp_path)}
    with pytest.raises(ToolchainMissing, match="onnxruntime is not installed") as e:
        remote_bench(sshd["url"], digits_bundle, None, 1, **FAST, **kw)
    assert "pip install onnxruntime" in e.value.hint and "edgekit[onnxruntime]" in e.value.hint


def test_python_missing(sshd, digits_bundle):
    with pytest.raises(RemoteDeviceError, match="not found on"):
        remote_verify(sshd["url"], digits_bundle, **{**sshd["kw"], "device_python": "/nonexistent/python3"})


def test_corrupted_artifact_refused_on_device(sshd, digits_bundle, tmp_path):
    import json

    bad = tmp_path / "corrupted"
    shutil.copytree(digits_bundle, bad)
    art = bad / json.loads((bad / "manifest.json").read_text())["artifacts"][0]["path"]
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the device's sha256 check can catch it
    art.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256") as e:
        remote_bench(sshd["url"], bad, None, 1, **FAST, **sshd["kw"])
    assert "on ssh://" in e.value.message and "refused on the device" in e.value.message
    report = e.value.device_report
    assert report["stage"] == "integrity" and report["runtime_modules"] == []  # no runtime was even imported
    assert leftovers(sshd["root"]) == []


def test_timeout_is_bounded(sshd, digits_bundle):
    """A port that accepts but never speaks SSH: the handshake times out after ConnectTimeout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accept, then stay silent
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(RemoteDeviceError, match="timed out") as e:
            remote_verify(f"ssh://root@127.0.0.1:{srv.getsockname()[1]}", digits_bundle,
                          **{**sshd["kw"], "connect_timeout_s": 2, "timeout_s": 10})
        assert time.perf_counter() - t0 < 9 and e.value.exit_code == 10
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()


def test_overall_timeout_stops_a_long_run(sshd, digits_bundle):
    t0 = time.perf_counter()
    with pytest.raises(RemoteDeviceError, match="timed out after 4 s"):
        remote_bench(sshd["url"], digits_bundle, None, 1, warmup_s=0.0, min_runs=10, min_time_s=60,
                     **{**sshd["kw"], "timeout_s": 4})
    assert time.perf_counter() - t0 < 30
    deadline = time.time() + 15  # the remote side is killed and its folder removed
    while leftovers(sshd["root"]) and time.time() < deadline:
        time.sleep(0.3)
    assert leftovers(sshd["root"]) == []


def test_disk_full(sshd, digits_bundle, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a 64 kB tmpfs here to fill the disk: {r.stderr.strip()}")
    try:
        with pytest.raises(RemoteDeviceError, match="disk full") as e:
            remote_verify(sshd["url"], digits_bundle, **{**sshd["kw"], "remote_root": str(small / "ek")})
        assert e.value.exit_code == 10 and "No space left on device" in e.value.message
        assert leftovers(small / "ek") == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_cli_bench_device_gives_the_same_json_as_local_bench(sshd, digits_bundle, tmp_path):
    """`edgekit bench BUNDLE --device ssh://...` against the test sshd, next to a local `edgekit bench`."""
    import json
    import sys

    kw = sshd["kw"]
    common = ["--min-runs", "60", "--min-time", "0.3", "--warmup", "0.1"]
    local_p = subprocess.run([sys.executable, "-m", "edgekit", "bench", str(digits_bundle), *common,
                              "--json", str(tmp_path / "local.json")], capture_output=True, text=True)
    remote_p = subprocess.run([sys.executable, "-m", "edgekit", "bench", str(digits_bundle), *common,
                               "--device", sshd["url"], "--identity", kw["identity"], "--device-python",
                               kw["device_python"], "--known-hosts", kw["known_hosts"],
                               "--json", str(tmp_path / "remote.json")], capture_output=True, text=True)
    assert local_p.returncode == 0 and remote_p.returncode == 0, local_p.stderr + remote_p.stderr
    local = json.loads((tmp_path / "local.json").read_text())
    remote = json.loads((tmp_path / "remote.json").read_text())
    assert set(remote) - {"device", "warnings"} == set(local)
    assert set(remote["latency_ms"]) == set(local["latency_ms"]) and set(remote["env"]) == set(local["env"])
    assert remote["artifact"] == local["artifact"] and remote["runs"] >= 60
    assert remote["measured_on"].startswith("device ssh://") and local["measured_on"] == "target"
    p = subprocess.run([sys.executable, "-m", "edgekit", "verify", str(digits_bundle), "--device", sshd["url"],
                        "--identity", kw["identity"], "--device-python", kw["device_python"],
                        "--known-hosts", kw["known_hosts"]], capture_output=True, text=True)
    assert p.returncode == 0 and "passed" in p.stdout, p.stdout + p.stderr
    p = subprocess.run([sys.executable, "-m", "edgekit", "bench", str(digits_bundle), "--device",
                        sshd["url"].rsplit(":", 1)[0] + f":{free_port()}", "--identity", kw["identity"]],
                       capture_output=True, text=True)
    assert p.returncode == 10 and "Traceback" not in p.stderr and "refused" in p.stderr.lower(), p.stderr


@needs(*MOBILE)
@pytest.mark.litert
@pytest.mark.executorch
def test_primary_chosen_by_latency_measured_on_the_device(sshd, digits_android, tmp_path):
    """An android bundle is compiled on a host that is not the phone: preference order picks the
    primary. Timed on the device (here: the test sshd), the fastest artifact becomes primary."""
    import json
    import shutil
    import sys

    from edgekit.bundle import open_bundle

    b = tmp_path / "bundle"
    shutil.copytree(digits_android, b)
    fast = ["--min-runs", "30", "--min-time", "0.2", "--warmup", "0.05"]
    p = subprocess.run([sys.executable, "-m", "edgekit", "bench", str(b), "--all", "--choose-primary", *fast],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "host timings do not rank artifacts on a device" in p.stderr
    kw = sshd["kw"]
    p = subprocess.run([sys.executable, "-m", "edgekit", "bench", str(b), "--all", "--choose-primary", *fast,
                        "--device", sshd["url"], "--identity", kw["identity"], "--device-python",
                        kw["device_python"], "--known-hosts", kw["known_hosts"], "--json", str(tmp_path / "b.json")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    m = open_bundle(b)  # still complete and intact: only the manifest changed
    choice = m.target["primary_choice"]
    assert choice["measured_on_device"] is True and choice["measured_on"] == f"device {sshd['url']}"
    timed = {r["artifact"]: r["latency_ms"]["p50"] for r in json.loads((tmp_path / "b.json").read_text())["results"]}
    assert set(choice["p50_ms"]) == set(timed) and len(timed) == 5
    assert m.artifacts[0].id == min(timed, key=timed.get) and m.artifacts[0].role == "primary"
    assert [a.role for a in m.artifacts[1:]] == ["fallback"] * 4
    assert choice["previous_rule"] == "first verified candidate in the profile's preference order"
