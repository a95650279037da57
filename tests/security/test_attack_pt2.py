"""Class 1: no code runs from a `.pt2`. Each archive below is a real torch.export archive with a real
payload added the way the loader would reach it; `torch.export.load` (torch 2.13) runs every one of
them if nothing stops it. The compile must refuse each (exit 4) and the marker must never appear."""
from __future__ import annotations

import json
import pickle
import zipfile

import pytest

from attack import Payload, edgekit_cli, good_pt2, one_line_error, rebuild_zip, snapshot, torch_save_payload
from edgekit.errors import UnsafeModelError
from edgekit.sources.exported import load_pt2
from edgekit.sources.safety import check_pt2, check_pt2_with_torch_reader


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return good_pt2(tmp_path_factory.mktemp("pt2") / "good.pt2")


def _legacy_weights(base, tmp, marker):
    # torch.export.load reads data/weights/<model>.pt as the whole state dict when present (its
    # "legacy format"), unpickling it with weights_only=False after weights_only=True fails.
    return rebuild_zip(base, tmp / "legacy-weights.pt2", last=[("data/weights/model.pt", torch_save_payload(marker))])


def _legacy_constants(base, tmp, marker):
    return rebuild_zip(base, tmp / "legacy-constants.pt2",
                       last=[("data/constants/model.pt", torch_save_payload(marker))])


def _duplicate_config(base, tmp, marker):
    # A second weights config, saying "pickle" for weight_0, ahead of the genuine one; weight_0 is the
    # payload. Python's zipfile (what a scan of the configs reads) returns the genuine config; torch's
    # reader (a sorted lookup) returned the forged one here, and ran the payload.
    with zipfile.ZipFile(base) as z:
        cfg = json.loads(z.read(next(n for n in z.namelist() if n.endswith("_weights_config.json"))))
    fqn = next(iter(cfg["config"]))
    cfg["config"][fqn]["use_pickle"] = True
    weight = f"data/weights/{cfg['config'][fqn]['path_name']}"
    payload = torch_save_payload(marker)
    return rebuild_zip(base, tmp / "duplicate.pt2",
                       first=[("data/weights/model_weights_config.json", json.dumps(cfg).encode()), (weight, payload)],
                       replace=lambda rel, data: payload if rel == weight else data)


def _opaque_object(base, tmp, marker):
    # An "opaque object" constant is read with plain pickle.loads.
    def cfg(rel, data):
        if rel.endswith("_constants_config.json"):
            return json.dumps({"config": {"obj": {"path_name": "opaque_obj_0", "is_param": False,
                                                   "use_pickle": True, "tensor_meta": None}}}).encode()
        return data
    return rebuild_zip(base, tmp / "opaque.pt2", replace=cfg, last=[("data/constants/opaque_obj_0",
                                                                     pickle.dumps(Payload(marker)))])


def _pre29_fallback(base, tmp, marker):
    # A current-format archive without archive_format makes load_pt2 raise RuntimeError;
    # torch.export.load then retries the pre-2.9 layout at the zip's root, whose serialized_*.pt
    # members it unpickles (weights-only first, then with weights_only=False).
    with zipfile.ZipFile(base) as z:
        program = z.read(next(n for n in z.namelist() if n.endswith("models/model.json")))
    return rebuild_zip(base, tmp / "pre29.pt2", drop=("archive_format",),
                       last=[("/version", b"8.13"), ("/serialized_exported_program.json", program),
                             ("/serialized_state_dict.pt", torch_save_payload(marker)),
                             ("/serialized_constants.pt", torch_save_payload(marker)),
                             ("/serialized_example_inputs.pt", torch_save_payload(marker))])


ATTACKS = {"legacy weights member": (_legacy_weights, "data/weights/model.pt"),
           "legacy constants member": (_legacy_constants, "data/constants/model.pt"),
           "duplicate member names": (_duplicate_config, "two members named"),
           "opaque object member": (_opaque_object, "opaque_obj_0"),
           "pre-2.9 layout fallback": (_pre29_fallback, "outside one top folder")}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_payload_archive_is_refused_by_compile_and_never_runs(base, tmp_path, attack):
    make, says = ATTACKS[attack]
    marker = tmp_path / "PWNED"
    evil = make(base, tmp_path, marker)
    before = snapshot(tmp_path)
    err = one_line_error(edgekit_cli("compile", "--model", evil, "--target", "cpu", "--out", tmp_path / "b"), 4)
    assert says in err and "refused" in err, err
    assert not marker.exists()
    assert snapshot(tmp_path) == before  # refused before any output: nothing written, nothing deleted
    # The loader (which runs in the compile's child) refuses on its own, on torch's reader's view.
    with pytest.raises(UnsafeModelError):
        check_pt2_with_torch_reader(evil)
    with pytest.raises(UnsafeModelError):
        load_pt2(evil)
    assert not marker.exists()


def test_a_genuine_archive_still_loads(base):
    check_pt2(base)
    check_pt2_with_torch_reader(base)
    src = load_pt2(base)
    assert src.kind == "torch" and list(src.example) and src.module is not None
