"""Every real component that runs on this machine stays exercised by at least one test that runs.

The component markers (pyproject.toml; the table in docs/testing.md) say which runtimes and
services a test drives for real. A marker whose every test is skipped, or that no test carries any
more, means a runtime silently dropped out of CI: this test fails instead.
"""
from __future__ import annotations

import pytest
from conftest import COMPONENTS


def _skipped(item) -> bool:
    return any(m.args and m.args[0] is True or m.kwargs.get("condition") is True
               for m in item.iter_markers("skipif")) or any(True for _ in item.iter_markers("skip"))


def test_every_real_component_is_exercised_by_a_test_that_runs(request):
    items = request.session.items
    root = request.path.parent
    every_file = {p.relative_to(root) for p in root.rglob("test_*.py")}  # tests/security/ too
    if {i.path.relative_to(root) for i in items} != every_file:
        pytest.skip("needs the whole suite collected (run without -k/-m or a file selection)")
    exercised = {c: [i.nodeid for i in items if i.get_closest_marker(c) and not _skipped(i)] for c in COMPONENTS}
    assert all(exercised.values()), {c: len(v) for c, v in exercised.items()}
