"""Shared fixtures: real compiles through the real CLI, cached once per test session."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # Hermetic: each test session starts with an empty model cache, so the digits model is trained
    # from scratch (about 5 s) exactly as on a new machine. Child processes inherit the variable.
    import tempfile

    os.environ["EDGEKIT_CACHE"] = tempfile.mkdtemp(prefix="edgekit-test-cache-")
    # and results go to a throwaway history database, never the user's
    os.environ["EDGEKIT_HISTORY"] = os.path.join(tempfile.mkdtemp(prefix="edgekit-test-history-"), "history.sqlite")


def edgekit(*args, cwd=None, check=False, timeout=900, env=None) -> subprocess.CompletedProcess:
    """Run `python -m edgekit ARGS` as a user would; returns the completed process (text)."""
    p = subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"edgekit {' '.join(map(str, args))} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


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


@pytest.fixture(scope="session")
def digits_bundle(build_dir) -> Path:
    out = build_dir / "digits-cpu"
    edgekit("compile", "--target", "cpu", "--out", out, check=True)  # --model omitted: the default model
    return out


@pytest.fixture(scope="session")
def minilm_bundle(build_dir) -> Path:
    out = build_dir / "minilm-cpu"
    edgekit("compile", "--model", "builtin:minilm", "--target", "cpu", "--out", out, check=True)
    return out


TINY_MODEL = textwrap.dedent('''
        import numpy as np
        import torch

        class Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
                self.fc = torch.nn.Linear(4 * 6 * 6, 5)

            def forward(self, x):
                return self.fc(torch.relu(self.conv(x)).flatten(1))

        def make():
            torch.manual_seed(0)
            img = np.random.default_rng(0).standard_normal((3, 6, 6))  # float64, like real user data
            example = np.broadcast_to(img, (1, 3, 6, 6))  # stride 0 on the batch axis
            return {"model": Tiny().eval(), "example_inputs": example, "input_names": ["pixels"],
                    "output_names": ["scores"], "task": "classification"}

        def make_tuple():
            torch.manual_seed(0)
            return Tiny().eval(), torch.randn(1, 3, 6, 6)
''')


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
def minilm_android(build_dir) -> Path:
    out = build_dir / "minilm-android"
    edgekit("compile", "--model", "builtin:minilm", "--target", "android", "--out", out, check=True)
    return out


@pytest.fixture(scope="session")
def digits_android(build_dir) -> Path:
    out = build_dir / "digits-android"
    edgekit("compile", "--model", "builtin:digits", "--target", "android", "--out", out, check=True)
    return out
