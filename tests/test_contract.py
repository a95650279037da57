"""The contract every registered converter and runtime must meet, checked on real artifacts.

One parametrized test per registered converter and runtime (edgekit.converters, edgekit.runtimes). Each
reads the default model's bundle for a target that builds the row by default (conftest.digits_for:
built once per test run and shared with the per-target tests) and checks the artifact's record of
shape: the file or folder is where the manifest says, its hash and size match, its IO is the model's,
the toolchain versions that built it are recorded, and its verification is either a pass on the real
runtime with real numbers, or `not-run` on an artifact for another machine that says why and what
was checked here. Where the runtime runs here, the artifact is loaded again on it and its outputs on
the bundle's self-test vectors are compared with the reference here, independently of the compile.

A new converter or runtime passes this test before it is done: add it to a target profile first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import digits_for, needs
from edgekit import deps
from edgekit.bundle import open_bundle, sha256_file, size_bytes
from edgekit.converters import all_converters
from edgekit.runtimes import all_runners, open_runner
from edgekit.selftest import selftest_feeds
from edgekit.targets import all_profiles

# Runtimes no compile targets, with the test that runs them for real instead.
DEVICE_ONLY = {"tfjs-chromium": "test_browser.py runs TF.js artifacts in a page of headless Chromium"}
# The component marker (conftest.COMPONENTS) of what each row's check runs for real.
RUNTIME_MARK = {"onnxruntime": "onnxruntime", "torchscript-lite": "torchscript_lite", "litert": "litert",
                "executorch": "executorch", "tvm": "tvm", "tfjs": "tfjs_node", "coreml": "coreml", "tensorrt": "tensorrt"}
CONVERTER_MARK = {"onnx-ort": "onnxruntime", "torchscript": "torchscript_lite", "litert": "litert",
                  "executorch": "executorch", "tvm": "tvm", "tvm-aarch64": "tvm", "tvm-cuda": "tvm",
                  "tensorrt": "tensorrt", "coreml": "coreml", "tfjs": "tfjs_node"}


def _rows(names, marks: dict) -> list:
    return [pytest.param(n, marks=[getattr(pytest.mark, marks[n])] if n in marks else []) for n in sorted(names)]


# What the digits bundle's artifacts must take and give, whatever the format inside.
DIGITS_IO = ([("image", [1, 1, 8, 8], "float32")], [("logits", [1, 10], "float32")])


def _target_building(attr: str, value: str) -> str | None:
    """A target whose default candidates include one with candidate.<attr> == value; targets that are
    this host first, so an artifact is run here wherever its runtime can run here."""
    for profile in sorted(all_profiles(), key=lambda p: not p.host_is_target):
        if any(getattr(c, attr) == value and not c.on_request for c in profile.candidates):
            return profile.name
    return None


def _bundle_for(attr: str, value: str):
    target = _target_building(attr, value)
    assert target, f"no target builds a {value!r} candidate by default: add it to a profile in targets/"
    out, result = digits_for(target, check=False)
    assert result.returncode == 0, f"compile --target {target} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return out, open_bundle(out)  # complete, every hash checked


def _io(specs) -> list[tuple]:
    return [(t.name, list(t.shape), t.dtype) for t in specs]


def _cosines(refs: list[dict], got: list[dict], name: str) -> list[float]:
    out = []
    for r, g in zip(refs, got):
        a, b = np.asarray(r[name], np.float64).ravel(), np.asarray(g[name], np.float64).ravel()
        out.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    return out


def _runs_here(runtime: str) -> str | None:
    """None where the runtime runs on this machine, else why not."""
    if runtime == "tensorrt":
        return "TensorRT engines are built and run on an NVIDIA GPU (edgekit build on the device)"
    if runtime == "coreml":
        return "Core ML predictions need macOS (coremltools' libcoremlpython)"
    return None


def _check_on_runtime(bundle: Path, manifest, art) -> None:
    """Load the artifact on its real runtime and compare its outputs on the self-test vectors with
    the references stored at compile time, against the tolerance it was verified with."""
    inputs, refs = selftest_feeds(bundle, manifest, art)
    assert len(inputs) >= 4
    runner = open_runner(art.runtime, bundle / art.path, 1, art.inputs, art.outputs, art.input_layout)
    got = [runner.run(x) for x in inputs]
    for name, shape, _ in _io(art.outputs):
        for g in got:
            assert np.asarray(g[name]).shape == tuple(shape), (art.id, name, np.asarray(g[name]).shape)
            assert np.isfinite(g[name]).all(), art.id
        worst = min(_cosines(refs, got, name))
        assert worst >= art.verification.tolerance["cosine_min"], (art.id, name, worst)


@pytest.mark.parametrize("converter", _rows(all_converters(), CONVERTER_MARK))
def test_converter_contract(converter):
    conv = all_converters()[converter]
    if any(not deps.available(t) for t in conv.toolchains):
        pytest.skip(needs(*conv.toolchains).kwargs["reason"])
    bundle, manifest = _bundle_for("converter", converter)
    check_converter_contract(bundle, manifest, conv, DIGITS_IO)


def check_converter_contract(bundle: Path, manifest, conv, io) -> None:
    """The converter's artifacts in a bundle: where the manifest says, hashed, the model's IO, toolchain
    versions recorded, verified on the real runtime (or not-run with why and what was checked)."""
    converter, fmt, suffix = conv.name, conv.format, conv.suffix
    arts = [a for a in manifest.artifacts if a.converter.get("name") == converter]
    assert arts, f"the bundle has no artifact from {converter}; failed: {manifest.failed_candidates}"
    for a in arts:
        assert a.format == fmt and a.path == f"artifacts/{a.id}{suffix}", (a.id, a.format, a.path)
        f = bundle / a.path
        assert f.exists() and sha256_file(f) == a.sha256 and size_bytes(f) == a.size_bytes > 0, a.id
        assert (_io(a.inputs), _io(a.outputs)) == io, a.id  # the model's IO, whatever the file takes
        assert a.id.startswith(f"{a.runtime}-{a.precision}") and a.runtime in all_runners(), a.id
        recorded = {k for k, v in a.toolchain.items() if v}
        assert recorded, (a.id, a.toolchain)  # which versions built it
        v = a.verification
        if v.status == "passed":
            assert a.role in ("primary", "fallback") and v.where and v.samples >= 100, (a.id, v)
            assert all(m["cosine"] >= v.tolerance["cosine_min"] for m in v.metrics.values()), (a.id, v.metrics)
            assert _runs_here(a.runtime) is None
            _check_on_runtime(bundle, manifest, a)
        else:  # built for another machine: it says so, why, and what was checked here instead
            assert v.status == "not-run" and a.role == "on-device" and v.reason, (a.id, v)
            assert {"deferred", "artifact_checks", "host_check", "package_checks"} & set(a.converter), \
                (a.id, sorted(a.converter))


@pytest.mark.parametrize("runtime", _rows(all_runners(), RUNTIME_MARK))
def test_runtime_contract(runtime):
    if runtime in DEVICE_ONLY:
        pytest.skip(f"{runtime}: no compile builds for it; {DEVICE_ONLY[runtime]}")
    bundle, manifest = _bundle_for("runtime", runtime)
    arts = [a for a in manifest.artifacts if a.runtime == runtime]
    assert arts, f"the bundle has no {runtime} artifact; failed: {manifest.failed_candidates}"
    why_not = _runs_here(runtime)
    if why_not:
        assert all(a.verification.status == "not-run" for a in arts)  # never called verified here
        pytest.skip(why_not)
    toolchain = all_runners()[runtime].toolchain
    assert deps.available(toolchain), needs(toolchain).kwargs["reason"]
    ran = [a for a in arts if a.verification.status == "passed"]
    assert ran, f"no {runtime} artifact was verified here: {[(a.id, a.verification.reason) for a in arts]}"
    for a in ran:
        _check_on_runtime(bundle, manifest, a)
