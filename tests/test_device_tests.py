"""The on-device suite runs (here, on this machine as the device) against a real bundle."""
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.onnxruntime]


def test_device_suite_passes_on_a_good_bundle(digits_bundle):
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "device_tests"),
                        "--bundle", str(digits_bundle)], capture_output=True, text=True, cwd=ROOT / "device_tests")
    assert p.returncode == 0 and "2 passed" in p.stdout, p.stdout + p.stderr
