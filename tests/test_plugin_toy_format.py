"""A format from outside edgekit, plugged in the way CONTRIBUTING.md says: one converter file, one
runtime file and one target file (tests/plugins/), named in EDGEKIT_PLUGINS. The default model is
compiled for the toy target through the real CLI and must pass the same contract as every built-in
converter and runtime (test_contract.py), then load and predict through edgekit.load."""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import ROOT, edgekit, shared_bundle
from test_contract import DIGITS_IO, _check_on_runtime, check_converter_contract

PLUGINS = ROOT / "tests" / "plugins"
ENV = {"EDGEKIT_PLUGINS": "toyz_converter,toyz_runtime,toy_target",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))}

pytestmark = pytest.mark.onnxruntime


@pytest.fixture
def plugged(monkeypatch):
    """This process sees the plug-ins too (the compile's child processes get them from ENV)."""
    monkeypatch.setenv("EDGEKIT_PLUGINS", ENV["EDGEKIT_PLUGINS"])
    monkeypatch.syspath_prepend(str(PLUGINS))


def test_toy_format_passes_the_contract(plugged):
    from edgekit import converters, load
    from edgekit.bundle import open_bundle

    out, result = shared_bundle("digits-toy", "--target", "toy", env=ENV)
    manifest = open_bundle(out)
    toy = converters.get("toyz")
    check_converter_contract(out, manifest, toy, DIGITS_IO)
    (art,) = [a for a in manifest.artifacts if a.runtime == "toyz-ort"]
    assert art.role == "primary" and art.verification.status == "passed", art.verification
    assert art.format == "toyz" and art.path.endswith(".toyz")
    assert 0 < art.converter["ratio"] < 1  # really compressed: the file is the gzip, not the ONNX
    _check_on_runtime(out, manifest, art)
    p = load(out)
    assert p.active == art.id
    x = np.zeros((1, 1, 8, 8), np.float32)
    y = p.predict({"image": x})["logits"]
    assert y.shape == (1, 10) and np.isfinite(y).all()
    v = edgekit("verify", out, "--no-history", env=ENV)
    assert v.returncode == 0 and "toyz-ort-fp32" in v.stdout, v.stderr


def test_plugins_are_listed_and_bad_ones_refused(plugged):
    t = edgekit("targets", env=ENV)
    assert t.returncode == 0 and "toyz-ort" in t.stdout and "toy" in t.stdout
    bad = edgekit("targets", env={**ENV, "EDGEKIT_PLUGINS": "no_such_plugin_module"})
    assert bad.returncode == 2 and "EDGEKIT_PLUGINS: cannot import plug-in module 'no_such_plugin_module'" in bad.stderr
    typo = edgekit("compile", "--target", "toyy", env=ENV)
    assert typo.returncode == 2 and 'did you mean "toy"' in typo.stderr


def test_a_plug_in_cannot_take_a_built_in_name(tmp_path, monkeypatch):
    (tmp_path / "clash_plugin.py").write_text(
        "from edgekit.runtimes.onnxruntime import OrtRunner\n\nclass Clash(OrtRunner):\n    pass\n\nRUNNER = Clash\n")
    (tmp_path / "empty_plugin.py").write_text("X = 1\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    clash = edgekit("targets", env={**env, "EDGEKIT_PLUGINS": "clash_plugin"})
    assert clash.returncode == 2 and "plug-in runtime 'onnxruntime' clashes" in clash.stderr, clash.stderr
    empty = edgekit("targets", env={**env, "EDGEKIT_PLUGINS": "empty_plugin"})
    assert empty.returncode == 2 and "exports none of CONVERTER" in empty.stderr, empty.stderr
