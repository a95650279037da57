"""`pip install edgekit` without extras: `import edgekit` and the bundle loader work with numpy only."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.onnxruntime]

BLOCKER = textwrap.dedent('''
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        HEAVY = {"torch", "onnx", "onnxscript", "onnx_ir", "onnxruntime", "sklearn", "skimage", "transformers",
                 "tokenizers", "scipy"}
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.HEAVY:
                raise ImportError(f"blocked in this test: {name}")
    sys.meta_path.insert(0, Block())
''')


def test_import_and_open_bundle_without_heavy_toolchains(digits_bundle):
    code = BLOCKER + textwrap.dedent(f'''
        import edgekit
        from edgekit.bundle import open_bundle
        from edgekit.errors import ToolchainMissing
        m = open_bundle({str(digits_bundle)!r})
        assert m.artifacts[0].verification.status == "passed"
        try:
            edgekit.load({str(digits_bundle)!r})
        except ToolchainMissing as e:
            assert "edgekit[onnxruntime]" in str(e), e
            print("OK")
    ''')
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and "OK" in p.stdout, p.stderr


def test_cli_lists_targets_and_doctor_without_toolchains():
    code = BLOCKER + "import sys; from edgekit.cli import main; sys.exit(main(['doctor']) or main(['targets']))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "pip install 'edgekit[onnxruntime]'" in p.stdout  # the exact install command, per toolchain


@pytest.mark.slow
def test_real_bare_venv_install(tmp_path, digits_bundle):
    """A new virtualenv, `pip install` of edgekit with no extras: only numpy comes along."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", "build", ".git", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", str(src)], capture_output=True, text=True,
                       env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.lower()
    names = {ln.split("==")[0].split(" @ ")[0].strip() for ln in freeze.splitlines() if ln.strip()}
    assert names <= {"numpy", "edgekit"}, names
    p = subprocess.run([str(py), "-c", f"import edgekit; from edgekit.bundle import open_bundle; "
                                       f"print(open_bundle({str(digits_bundle)!r}).artifacts[0].id)"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0 and "onnxruntime-fp32" in p.stdout, p.stderr
