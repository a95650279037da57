"""One finding (an operator a toolchain cannot take, an export failure) as a line a user can act on:
the op, its node, the user's own source line and why; and the rewrite that usually fixes it.
Parent side: no torch. Used by the pre-flight check, the pipeline and failure explanations."""
from __future__ import annotations


def _short(path: str) -> str:
    import os

    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path


def where(src: dict | None) -> str:
    """'model.py:12 `y = torch.cumsum(x, 1)`' or '' when the export did not know the line."""
    return f"{_short(src['file'])}:{src['line']} `{src['code']}`" if src else ""


def finding(f: dict) -> str:
    """One unsupported/slow operator in one line: op (node) at file:line `code`: why."""
    node = f" (node {f['node']})" if f.get("node") and f["node"] != f.get("op") else ""
    at = f" at {where(f.get('source'))}" if f.get("source") else ""
    head = f"{f['op']}{node}{at}" if f.get("op") not in (None, "", "-") else at.strip()
    return f"{head}: {f['why']}" if head else f["why"]


def rewrite_for(findings: list[dict]) -> str | None:
    from .rewrites import suggest

    for f in findings:
        tip = suggest(f.get("op", ""), f.get("why", ""))
        if tip:
            return tip
    return None
