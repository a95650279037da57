"""Core ML on a Mac: the bundle's .mlpackage artifacts load in Core ML and reproduce the self-test vectors.

    pip install 'edgekit[mobile]' && pytest device_tests/test_coreml_mac.py --bundle my-ios-bundle

Core ML predictions run only on macOS (coremltools' prediction API binds Apple's Core ML
framework through libcoremlpython, which only the macOS wheels ship); elsewhere these tests skip
with that reason. Artifacts still waiting for the device ("on-device", not-run) are checked too:
this is where they are run for the first time (`python -m edgekit build BUNDLE` records it).
"""
import platform
import statistics
import time
from pathlib import Path

import pytest

from edgekit.bundle import open_bundle

RUNS, WARMUP = 50, 5


@pytest.fixture
def mac():
    if platform.system() != "Darwin":
        pytest.skip(f"Core ML prediction needs macOS (coremltools' libcoremlpython is macOS-only); this is "
                    f"{platform.system()} {platform.machine()}")


def _coreml(bundle):
    m = open_bundle(bundle)  # every file's size and sha256 checked (a package: every file inside)
    arts = [a for a in m.artifacts if a.runtime == "coreml" and a.role != "rejected"]
    if not arts:
        pytest.skip("the bundle has no Core ML artifact (compile it with --target ios)")
    return m, arts


def test_coreml_predictions_match_selftest_vectors(mac, bundle):
    from edgekit.runtimes import open_runner
    from edgekit.selftest import check_runner

    m, arts = _coreml(bundle)
    for a in arts:
        runner = open_runner(a.runtime, Path(bundle) / a.path, inputs=a.inputs, outputs=a.outputs)
        metrics, failures = check_runner(runner, bundle, m, a)
        assert metrics and not failures, (a.id, runner.compute_units, failures)


def test_coreml_latency_median(mac, bundle):
    """Median of RUNS predictions after WARMUP (the first ones compile and specialize the model)."""
    from edgekit.runtimes import open_runner
    from edgekit.selftest import selftest_feeds

    m, arts = _coreml(bundle)
    for a in arts:
        runner = open_runner(a.runtime, Path(bundle) / a.path, inputs=a.inputs, outputs=a.outputs)
        feeds = selftest_feeds(bundle, m, a)[0][0]
        for _ in range(WARMUP):
            runner.run(feeds)
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            runner.run(feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        median = statistics.median(times)
        print(f"{a.id}: median {median:.3f} ms over {RUNS} predictions (compute units {runner.compute_units}, "
              f"{platform.machine()} macOS {platform.mac_ver()[0]})")
        assert 0 < median < 10_000
