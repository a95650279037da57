"""What a device checks before trusting a bundle: files intact, every usable artifact loads on this
device's runtime and reproduces its self-test vectors within the profile's tolerance."""
import numpy as np

import edgekit
from edgekit.bundle import open_bundle
from edgekit.pipeline import selftest_feeds
from edgekit.profiles import Tolerance
from edgekit.verify import judge, output_metrics


def test_bundle_files_match_manifest(bundle):
    m = open_bundle(bundle)
    assert m.complete and m.usable(), "no usable artifact"


def test_selftest_vectors_pass_on_this_device(bundle):
    m = open_bundle(bundle)
    inputs, refs = selftest_feeds(bundle, m)
    assert inputs, "bundle has no self-test vectors"
    for a in m.usable():
        p = edgekit.load(bundle, artifact=a.id, check_hashes=False)
        got = [p.predict(x) for x in inputs]
        metrics = {o.name: output_metrics(np.stack([r[o.name] for r in refs]), np.stack([g[o.name] for g in got]),
                                          m.model.get("task") == "classification") for o in a.outputs}
        assert not judge(metrics, Tolerance(**a.verification.tolerance)), (a.id, metrics)
