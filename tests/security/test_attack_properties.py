"""Bounded property-based tests (Hypothesis) of the readers an attacker feeds: the pickle scanner,
the `.pt2` scanner on mutated real archives, and the manifest reader on mutated real manifests.

Deterministic (derandomize) and without an example database, so CI sees the same cases every run
and nothing is written into the checkout."""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import zipfile

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from attack import Payload, good_pt2, torch_save_payload
from edgekit.bundle import open_bundle
from edgekit.errors import BundleError, UnsafeModelError
from edgekit.manifest import ID_PATTERN, check_relpath
from edgekit.sources.safety import _global_ok, check_pickle_bytes, check_pt2, check_pt2_with_torch_reader

BOUNDED = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Reduce:
    """Pickles as a call of `func(*args)`: every way a pickle imports something callable."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


EVIL = [os.system, eval, exec, getattr, __import__, shutil.rmtree, io.open, zipfile.ZipFile]
plain = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
                     | st.binary(max_size=8),
                     lambda kids: st.lists(kids, max_size=4) | st.tuples(kids, kids)
                     | st.dictionaries(st.text(max_size=4), kids, max_size=4), max_leaves=12)


@BOUNDED
@given(data=plain, evil=st.lists(st.sampled_from(EVIL), max_size=2), proto=st.integers(3, 5))
def test_pickle_scanner_refuses_every_callable_import_and_passes_plain_data(data, evil, proto):
    obj = [data, *[Reduce(f, ("x",)) for f in evil]]
    raw = pickle.dumps(obj, protocol=proto)
    if evil:
        with pytest.raises(UnsafeModelError):
            check_pickle_bytes(raw, "p")
    else:
        check_pickle_bytes(raw, "p")


class _Recorder(pickle.Unpickler):
    """Unpickles nothing callable: records what it was asked to import, refuses all of it."""

    seen: list

    def find_class(self, module, name):
        self.seen.append((module, name))
        raise pickle.UnpicklingError("refused by the test")


@BOUNDED
@given(flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=4),
       proto=st.integers(0, 5))
def test_a_mutated_pickle_that_passes_the_scan_imports_only_what_the_scan_allows(flips, proto):
    raw = bytearray(pickle.dumps([1, "a", Reduce(os.system, ("touch /nonexistent/x",))], protocol=proto))
    for pos, val in flips:
        raw[pos % len(raw)] = val
    try:
        check_pickle_bytes(bytes(raw), "p")
    except UnsafeModelError:
        return
    r = _Recorder(io.BytesIO(bytes(raw)))
    r.seen = []
    try:
        r.load()
    except Exception:  # noqa: BLE001 - a broken stream may fail any way; what it imported is the point
        pass
    assert all(_global_ok(m, n) for m, n in r.seen), r.seen


@pytest.fixture(scope="module")
def pt2_parts(tmp_path_factory):
    base = good_pt2(tmp_path_factory.mktemp("pt2") / "good.pt2")
    with zipfile.ZipFile(base) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


MEMBER_NAMES = ["data/weights/model.pt", "data/constants/model.pt", "data/constants/opaque_obj_0", "extra/notes",
                "models/other.json", "data/weights/weight_9", "data/sample_inputs/model.pt", "/version",
                "/serialized_state_dict.pt", "data/aotinductor/model/x.pt", "../escape"]


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(MEMBER_NAMES), st.sampled_from(["torch", "pickle", "junk"])),
    st.tuples(st.just("dup"), st.integers(0, 20), st.sampled_from(["torch", "pickle", "junk"])),
    st.tuples(st.just("use_pickle"), st.integers(0, 1), st.just("")),
    st.tuples(st.just("flip"), st.integers(0, 20), st.integers(0, 10 ** 5)),
    st.tuples(st.just("drop"), st.integers(0, 20), st.just(""))), min_size=1, max_size=3))
def test_a_mutated_pt2_is_refused_or_loads_without_running_anything(pt2_parts, tmp_path, ops):
    import torch

    marker = tmp_path / f"PWNED-{os.getpid()}"
    payloads = {"torch": torch_save_payload(marker), "pickle": pickle.dumps(Payload(marker)), "junk": b"\x80\x05junk"}
    parts = list(pt2_parts)
    top = parts[0][0].split("/", 1)[0]
    for op, a, b in ops:
        if op == "add":
            parts.append((a[1:] if a.startswith("/") else f"{top}/{a}", payloads[b]))
        elif op == "dup":
            parts.insert(0, (parts[a % len(parts)][0], payloads[b]))
        elif op == "use_pickle":
            for i, (n, d) in enumerate(parts):
                if n.endswith("_weights_config.json" if a else "_constants_config.json"):
                    cfg = json.loads(d)
                    for meta in cfg["config"].values():
                        meta["use_pickle"] = True
                    parts[i] = (n, json.dumps(cfg).encode())
        elif op == "flip":
            n, d = parts[a % len(parts)]
            if d:
                d = bytearray(d)
                d[b % len(d)] ^= 0xFF
                parts[a % len(parts)] = (n, bytes(d))
        elif op == "drop" and len(parts) > 1:
            parts.pop(a % len(parts))
    path = tmp_path / "m.pt2"
    import warnings

    with zipfile.ZipFile(path, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n, d in parts:
            z.writestr(n, d)
    try:
        check_pt2(path)
        check_pt2_with_torch_reader(path)
    except UnsafeModelError:
        event("refused")
        assert not marker.exists()
        return
    try:  # accepted: torch may still reject it, but must not run anything
        torch.export.load(str(path))
        event("accepted, loads")
    except Exception:  # noqa: BLE001
        event("accepted, torch rejects it")
    assert not marker.exists(), ops


@pytest.fixture(scope="module")
def manifest_dict(tiny_bundle):
    return json.loads((tiny_bundle / "manifest.json").read_text())


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


HOSTILE = st.one_of(st.sampled_from(["../x", "/etc/passwd", "a/../../b", "x\x00y", "", ".", "..", "a\\b", "C:\\x",
                                     "A" * 300, "ok-name", -1, 2 ** 40, None, True, 1.5, [], {}, [[[[[]]]]]]),
                    st.text(max_size=12), st.integers())


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.integers(0, 10 ** 6), value=HOSTILE)
def test_the_manifest_reader_refuses_or_returns_only_safe_names(manifest_dict, tmp_path, choice, value):
    paths = [p for p in _paths(manifest_dict) if p]
    where = paths[choice % len(paths)]
    m = json.loads(json.dumps(manifest_dict))
    node = m
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    b = tmp_path / "b"
    b.mkdir(exist_ok=True)
    (b / "manifest.json").write_text(json.dumps(m))
    try:
        man = open_bundle(b, check_files=False)
    except BundleError:
        return
    for a in man.artifacts:
        assert ID_PATTERN.fullmatch(a.id)
        check_relpath(a.path, "path")
        assert (b / a.path).resolve().is_relative_to(b.resolve())
    if man.selftest:
        check_relpath(man.selftest["path"], "selftest")
