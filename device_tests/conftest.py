"""On-device checks of a compiled bundle: `pytest device_tests --bundle DIR`.

Run on the device itself with the bare install (numpy + the artifact's runtime):
    pip install 'edgekit[onnxruntime]' && pytest device_tests --bundle my-bundle
"""
import pytest


def pytest_addoption(parser):
    parser.addoption("--bundle", action="store", default=None, help="bundle folder to check on this device")


@pytest.fixture
def bundle(request):
    path = request.config.getoption("--bundle")
    if not path:
        pytest.skip("no --bundle given: device tests check a compiled bundle on the device that runs it")
    return path
