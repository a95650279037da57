"""docs/reference/manifest.schema.json: a valid JSON Schema that real manifests pass and broken ones
fail, naming the JSON path; with EDGEKIT_VALIDATE_MANIFESTS=1 (conftest sets it) the bundle writer
checks every manifest against it before writing, so every bundle the suite builds is checked."""
from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from conftest import ROOT
from edgekit import manifest_schema
from edgekit.bundle import BundleWriter, open_bundle
from edgekit.errors import BundleError
from edgekit.manifest import SCHEMA, Artifact, Manifest, Verification
from edgekit.manifest_schema import SCHEMA_PATH, validate

REFERENCE = ROOT / "ci" / "reference" / "digits-cpu"  # committed, written by an older edgekit


def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _reference() -> dict:
    return json.loads((REFERENCE / "manifest.json").read_text())


def test_the_schema_is_a_valid_draft_2020_12_schema():
    from jsonschema import Draft202012Validator

    schema = _schema()
    assert SCHEMA_PATH == ROOT / "docs" / "reference" / "manifest.schema.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == SCHEMA


def test_the_schema_lists_exactly_the_fields_of_the_manifest_records():
    """The reader builds these records with cls(**d): a key they lack is refused, so the schema
    forbids other keys there, and a field added to a record must be added to the schema."""
    schema = _schema()
    for props, record in [(schema, Manifest), (schema["$defs"]["artifact"], Artifact),
                          (schema["$defs"]["verification"], Verification)]:
        assert set(props["properties"]) == {f.name for f in dataclasses.fields(record)}, record.__name__
        assert props["additionalProperties"] is False
        required = {f.name for f in dataclasses.fields(record)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        assert required <= set(props["required"]), record.__name__


def test_a_bundle_compiled_now_validates(digits_bundle):
    validate(json.loads((digits_bundle / "manifest.json").read_text()))


def test_the_committed_reference_bundle_validates():
    assert open_bundle(REFERENCE).complete
    validate(_reference())


@pytest.mark.parametrize("change, path, words", [
    (lambda m: m["artifacts"][0].__setitem__("size_bytes", "big"), "$.artifacts[0].size_bytes", "is not of type 'integer'"),
    (lambda m: m["artifacts"][0].pop("sha256"), "$.artifacts[0]", "'sha256' is a required property"),
    (lambda m: m.pop("target"), "$", "'target' is a required property"),
    (lambda m: m["artifacts"][0].__setitem__("role", "best"), "$.artifacts[0].role", "is not one of"),
    (lambda m: m["artifacts"][0]["verification"].__setitem__("status", "ok"), "$.artifacts[0].verification.status",
     "is not one of"),
    (lambda m: m["artifacts"][0].__setitem__("path", "../../x.onnx"), "$.artifacts[0].path", "does not match"),
    (lambda m: m["model"]["inputs"][0]["shape"].__setitem__(0, -1), "$.model.inputs[0].shape[0]", "less than"),
    (lambda m: m["selftest"].__setitem__("sha256", "abc"), "$.selftest.sha256", "does not match"),
    (lambda m: m.__setitem__("schema", "edgekit.bundle/2"), "$.schema", "edgekit.bundle/1"),
    (lambda m: m["artifacts"][0].__setitem__("extra", 1), "$.artifacts[0]", "'extra' was unexpected"),
])
def test_a_broken_manifest_fails_naming_the_path(change, path, words):
    m = copy.deepcopy(_reference())
    change(m)
    with pytest.raises(BundleError) as e:
        validate(m)
    assert f"{path}: " in e.value.message and words in e.value.message, e.value.message


def test_the_error_names_the_first_few_violations_and_counts_the_rest():
    m = copy.deepcopy(_reference())
    for k in ("id", "role", "format", "runtime", "precision", "path", "sha256"):
        m["artifacts"][0][k] = 7
    with pytest.raises(BundleError) as e:
        validate(m)
    assert e.value.message.count("$.artifacts[0].") == manifest_schema.SHOWN and "(and 2 more)" in e.value.message


def test_without_the_schema_file_validate_does_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(manifest_schema, "SCHEMA_PATH", tmp_path / "absent.json")
    assert validate({"not": "a manifest"}) is None


def _bad_manifest() -> Manifest:
    m = Manifest.from_dict(_reference())
    m.artifacts[0].size_bytes = "big"
    return m


def test_the_bundle_writer_validates_when_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEKIT_VALIDATE_MANIFESTS", "1")
    out = tmp_path / "b"
    w = BundleWriter(out)
    try:
        with pytest.raises(BundleError, match=r"\$\.artifacts\[0\]\.size_bytes: 'big' is not of type 'integer'"):
            w.publish(_bad_manifest())
        assert not out.exists() and not (w.stage / "manifest.json").exists()  # refused before writing
    finally:
        w.discard()


def test_the_bundle_writer_does_not_validate_unless_asked(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGEKIT_VALIDATE_MANIFESTS", raising=False)
    out = BundleWriter(tmp_path / "b").publish(_bad_manifest())
    assert json.loads((out / "manifest.json").read_text())["artifacts"][0]["size_bytes"] == "big"
