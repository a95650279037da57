"""Check a manifest against its JSON Schema, docs/reference/manifest.schema.json.

The schema is the manifest's format for readers outside edgekit (apps, device code, other tools).
edgekit's own reader (edgekit.manifest.check_manifest_dict) stays the gate every bundle passes when
it is opened; this check keeps the schema and what edgekit writes in step: with
EDGEKIT_VALIDATE_MANIFESTS=1 (the tests set it) BundleWriter.publish validates every manifest
before writing it. Needs jsonschema (the dev extra); imports no numpy.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .errors import BundleError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "reference" / "manifest.schema.json"
ENV = "EDGEKIT_VALIDATE_MANIFESTS"
SHOWN = 5  # violations named in the error; the rest are counted


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _where(path) -> str:
    """A JSON path: $.artifacts[0].size_bytes."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def validate(manifest: dict) -> None:
    """Raise BundleError naming the first few schema violations (JSON path: what is wrong) of a
    manifest (the parsed manifest.json). The schema ships in the repository, not in the wheel: in
    an installed edgekit without docs/reference/ this does nothing and returns None."""
    if not SCHEMA_PATH.is_file():
        return None
    from jsonschema.exceptions import best_match

    # A oneOf/anyOf error (e.g. "null or a file entry") names its closest branch's own error: the deeper path.
    errors = [best_match([e]) for e in _validator().iter_errors(manifest)]
    if not errors:
        return None
    errors.sort(key=lambda e: ([(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in e.absolute_path], e.message))
    lines = [f"{_where(e.absolute_path)}: {e.message[:200]}" for e in errors[:SHOWN]]
    more = f" (and {len(errors) - SHOWN} more)" if len(errors) > SHOWN else ""
    raise BundleError(f"the manifest does not match {SCHEMA_PATH.name}{more}: " + "; ".join(lines),
                      hint=f"fix the writer, or the schema if the format changed on purpose: {SCHEMA_PATH}")
