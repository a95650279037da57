"""What a device checks before trusting a bundle: files intact, every usable artifact loads on this
device's runtime and reproduces its self-test vectors within the profile's tolerance."""
from edgekit.bundle import open_bundle
from edgekit.selftest import check_artifact


def test_bundle_files_match_manifest(bundle):
    m = open_bundle(bundle)
    assert m.complete and m.usable(), "no usable artifact"


def test_selftest_vectors_pass_on_this_device(bundle):
    m = open_bundle(bundle)
    for a in m.usable():
        metrics, failures = check_artifact(bundle, m, a)
        assert metrics and not failures, (a.id, failures)
