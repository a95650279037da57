"""Shared fixtures: real compiles through the real CLI, each built once per test run.

The suite runs on every core (pytest-xdist, `./ek test`). A bundle is built once for the whole run,
whichever worker asks first, under a file lock (`shared_bundle`); every other worker waits for it and
reads it. Tests that only read a shared bundle use it in place; tests that change a bundle copy it first.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

# Every bundle a test builds, in any child process, is checked against docs/reference/manifest.schema.json.
os.environ["EDGEKIT_VALIDATE_MANIFESTS"] = "1"

ROOT = Path(__file__).resolve().parents[1]

# The real components a test exercises, as markers (pyproject.toml registers them; --strict-markers).
# docs/testing.md lists which tests exercise each; test_components.py fails if one stops being
# exercised.
COMPONENTS = ("onnxruntime", "litert", "executorch", "torchscript_lite", "tvm", "tfjs_node", "chromium", "sshd",
              "ray", "arm64")
# Tests that must not share the machine with each other: they time things, or start services whose
# start-up races (sshd, Ray, Chromium, the emulated arm64 device). They all run on one xdist worker, one after another.
EXCLUSIVE = ("timing", "sshd", "ray", "chromium", "arm64")


# The temporary folders this process made (model cache, shared bundles, history): removed when it ends,
# so repeated runs do not fill the disk (each run's bundles are ~0.8 GB).
_MADE: list[str] = []


def pytest_configure(config):
    # Hermetic: each test run starts with an empty model cache, so the digits model is trained from
    # scratch (about 5 s) exactly as on a new machine. The controller makes the folders before the
    # xdist workers start; workers inherit them, so the model is trained and each bundle built once.
    if "PYTEST_XDIST_WORKER" not in os.environ:
        os.environ["EDGEKIT_CACHE"] = tempfile.mkdtemp(prefix="edgekit-test-cache-")
        _MADE.append(os.environ["EDGEKIT_CACHE"])
        # A caller that repeats a selection on unchanged code may preset the bundle folder to reuse
        # its bundles (benchmarks/timing_tests_aa.sh); unset, as in CI, every run builds afresh.
        if not os.environ.get("EDGEKIT_TEST_BUNDLES"):
            os.environ["EDGEKIT_TEST_BUNDLES"] = tempfile.mkdtemp(prefix="edgekit-test-bundles-")
            _MADE.append(os.environ["EDGEKIT_TEST_BUNDLES"])
    # Results go to a throwaway history database, never the user's; one per process, so a test that
    # counts history rows sees only its own worker's.
    os.environ["EDGEKIT_HISTORY"] = os.path.join(tempfile.mkdtemp(prefix="edgekit-test-history-"), "history.sqlite")
    _MADE.append(os.path.dirname(os.environ["EDGEKIT_HISTORY"]))
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and int(workers) > 1:
        # One OpenMP thread per worker: with a compile on every core, PyTorch's spinning OpenMP workers
        # made digits training ~10x slower (95 s vs 8 s, measured by hand). Runtimes take explicit thread counts.
        os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_unconfigure(config):
    import shutil

    for d in _MADE:  # the controller's folders outlive its workers: it ends last
        shutil.rmtree(d, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(m) for m in EXCLUSIVE):
            item.add_marker(pytest.mark.xdist_group("exclusive"))


def edgekit(*args, cwd=None, check=False, timeout=900, env=None) -> subprocess.CompletedProcess:
    """Run `python -m edgekit ARGS` as a user would; returns the completed process (text)."""
    p = subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"edgekit {' '.join(map(str, args))} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def shared_bundle(key: str, *compile_args, env=None, check=True):
    """`edgekit compile ARGS --out <shared>/KEY`, run once per test run across all workers.

    Returns (bundle folder, the compile's result: returncode, stdout, stderr). KEY names the model,
    target and options; two fixtures with different options must use different keys."""
    from filelock import FileLock

    root = Path(os.environ["EDGEKIT_TEST_BUNDLES"])
    out, record = root / key, root / f"{key}.result.json"
    with FileLock(str(root / f"{key}.lock")):
        if not record.exists():
            p = edgekit("compile", *compile_args, "--out", out, env=env)
            record.write_text(json.dumps({"returncode": p.returncode, "stdout": p.stdout, "stderr": p.stderr}))
    result = SimpleNamespace(**json.loads(record.read_text()))
    if check and result.returncode != 0:
        raise AssertionError(f"edgekit compile {' '.join(map(str, compile_args))} exited {result.returncode}\n"
                             f"{result.stdout}\n{result.stderr}")
    return out, result


def import_file(path: Path):
    """Import a user's model file the way a test wants to compare against it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"user_{Path(path).stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundles")


# The default model (builtin:digits, --model omitted) compiled for each target, once per run: what the
# per-target tests and the converter/runtime contract test (test_contract.py) all read. Per target,
# what its tests need besides (the same options for every reader, so one build serves them all).
DIGITS_EXTRA = {
    "cpu-tvm": ("--bench", "--min-runs", "5", "--min-time", "0.05"),  # test_tvm_jetson reads the bench lines
}
DIGITS_ENV = {
    # One OpenMP thread: on a busy 2-core host, PyTorch's spinning OpenMP workers made training the
    # digits model for the hermetic cache take ~95 s instead of ~8 s (the artifacts are the same).
    "ios": {"OMP_NUM_THREADS": "1"},
}


def digits_for(target: str, check: bool = True):
    """(bundle, compile result) of the default model for TARGET, built once per test run."""
    return shared_bundle(f"digits-{target}", "--target", target, *DIGITS_EXTRA.get(target, ()),
                         env=DIGITS_ENV.get(target), check=check)


@pytest.fixture(scope="session")
def digits_bundle() -> Path:
    return digits_for("cpu")[0]


@pytest.fixture(scope="session")
def minilm_bundle() -> Path:
    return shared_bundle("minilm-cpu", "--model", "builtin:minilm", "--target", "cpu")[0]


TINY_CNN = ROOT / "tests" / "gallery" / "tiny_cnn.py"
TINY_MODEL = TINY_CNN.read_text()  # the source text, for tests that write it where a user would keep it


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    """The tiny CNN compiled for the cpu target: the small bundle fault-injection tests start from."""
    return shared_bundle("tiny-cpu", "--model", f"{TINY_CNN}:make", "--target", "cpu")[0]


@pytest.fixture
def tiny_factory(tmp_path) -> Path:
    """A user's model file: a small CNN whose example input is a numpy view with a stride-0 batch axis."""
    f = tmp_path / "tiny_model.py"
    f.write_text(TINY_MODEL)
    return f


def needs(*toolchains: str):
    """Skip (never mock) when a toolchain is missing; the reason is the command that installs it."""
    from edgekit import deps

    missing = [t for t in toolchains if not deps.available(t)]
    return pytest.mark.skipif(bool(missing), reason="not installed: " + ", ".join(
        f"{t} ({deps.TOOLCHAINS[t].install})" for t in missing))


MOBILE = ("litert-torch", "ai-edge-litert", "executorch")


@pytest.fixture(scope="session")
def minilm_l3_android() -> Path:
    """builtin:minilm-l3 (MiniLM's layers 0, 4 and 5: the same embeddings, tokenizer, dynamic length
    and outlier dims) for android: its five artifacts and three LiteRT buckets in 4.5 min on a
    2-core EPYC, against 7 min for the 6-layer MiniLM (which CI still compiles for cpu and jetson)."""
    return shared_bundle("minilm-l3-android", "--model", "builtin:minilm-l3", "--target", "android")[0]


@pytest.fixture(scope="session")
def digits_android() -> Path:
    return digits_for("android")[0]
