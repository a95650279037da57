"""Classes 5 and 7: one bad request never breaks serving, and nothing serves unchecked.

Before: a NaN, Inf or ~3e38 input made every artifact's output non-finite; each was blamed and
dropped, the chain was exhausted, and every later valid request failed too. A manifest without its
self-test entry was served by load() with no self-test at all."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import edgekit
from attack import edgekit_cli, one_line_error
from edgekit.errors import BundleError, InputError
from edgekit.selftest import selftest_feeds

pytestmark = [pytest.mark.onnxruntime, pytest.mark.torchscript_lite]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 3e38])
def test_one_bad_input_is_refused_and_the_next_valid_one_is_served_by_the_primary(digits_bundle, bad):
    p = edgekit.load(digits_bundle)
    primary = p.active
    ins, refs = selftest_feeds(digits_bundle, p.manifest)
    x = ins[0]["image"].copy()
    x[..., 0, 0] = bad
    for _ in range(3):  # again and again: still the input's fault, never the artifacts'
        with pytest.raises(InputError, match="NaN or infinite|every artifact"):
            p.predict(x)
    np.testing.assert_allclose(p.predict(ins[1])["logits"], refs[1]["logits"], atol=1e-4)
    assert p.active == primary and p.counters["switches"] == 0
    assert not [e for e in p.events if e["to"] is None]  # nothing was dropped


def _always_nan(b, art_id):
    """Rewrite one ONNX artifact so every output is NaN (Sqrt of -1 added), hash re-recorded: a defect
    that slipped past verification."""
    m = json.loads((b / "manifest.json").read_text())
    art = next(a for a in m["artifacts"] if a["id"] == art_id)
    path = b / art["path"]
    model = onnx.load(str(path))
    out = model.graph.output[0].name
    for n in model.graph.node:
        n.output[:] = [o + "_orig" if o == out else o for o in n.output]
    model.graph.node.extend([helper.make_node("Sqrt", ["minus_one"], ["nan"]),
                             helper.make_node("Add", [out + "_orig", "nan"], [out])])
    model.graph.initializer.append(numpy_helper.from_array(np.array(-1.0, np.float32), "minus_one"))
    onnx.save(model, str(path))
    data = path.read_bytes()
    art["sha256"], art["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (b / "manifest.json").write_text(json.dumps(m, indent=2))


def test_a_dropped_artifact_is_readmitted_only_by_passing_its_self_test(tiny_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    primary = json.loads((b / "manifest.json").read_text())["artifacts"][0]["id"]
    _always_nan(b, primary)
    p = edgekit.load(b, selftest=False, cooldown_calls=2)  # no self-test at load: the broken one serves first
    assert p.active == primary
    ins, _ = selftest_feeds(b, p.manifest)
    for x in ins:  # fallback answers; after the cooldown the primary is re-probed ...
        y = p.predict(x)
        assert all(np.all(np.isfinite(v)) for v in y.values())
    assert p.active != primary
    # ... and stays out: the re-probe runs its self-test even though load() skipped them
    assert any(e["from"] == primary and e["reason"].startswith("re-probe failed: self-test failed") for e in p.events)


def test_a_manifest_without_its_selftest_entry_is_refused_by_load_and_verify(tiny_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m["selftest"] = None
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="no self-test entry"):
        edgekit.load(b)
    err = one_line_error(edgekit_cli("verify", b, "--no-history"), 7)
    assert "no self-test vectors" in err
