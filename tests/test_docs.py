"""The docs stay short where they must and true to the code: README.md is a first screen, not a manual;
the generated reference pages (scripts/gen_reference.py) match the CLI and the error classes; every
relative link in README.md and docs/ leads to a file. (CI builds the site with `mkdocs build --strict`
separately, which also checks anchors and the nav.)"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _gen_reference():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail into docs/"
    first = "\n".join(lines[:60])
    assert "./ek compile --target cpu" in first and "./ek test" in first
    # .ci/run runs the README's test command, so the two cannot drift apart.
    assert "./ek test" in (ROOT / ".ci" / "run").read_text()


def test_generated_reference_matches_the_code():
    diffs = _gen_reference().check()
    assert not diffs, ("docs/reference is stale: run `.venv/bin/python scripts/gen_reference.py`\n"
                       + "\n".join(diffs)[:4000])


# [text](target) and ![alt](target), not inside code; reference-style [x]: target definitions too.
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)


def _without_code(text: str) -> str:
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)  # fenced blocks
    return re.sub(r"`[^`\n]*`", "", text)  # inline code


def _relative_links(md: Path):
    text = _without_code(md.read_text())
    for target in [*_INLINE.findall(text), *_DEFINITION.findall(text)]:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "/")):
            continue  # a URL (http:, mailto:), an anchor on the same page, or a site-absolute path
        yield target


def test_every_relative_link_points_to_an_existing_file():
    pages = [README, ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]
    assert len(pages) > 10
    broken = []
    for md in pages:
        for target in _relative_links(md):
            path = target.split("#", 1)[0].split("?", 1)[0]
            if path and not (md.parent / path).exists():
                broken.append(f"{md.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_link_finder_sees_links_and_skips_code(tmp_path):
    md = tmp_path / "page.md"
    md.write_text("[a](a.md) ![b](img/b.png \"title\") [c](https://x.org) [d](#here)\n"
                  "`[e](not-a-link.md)`\n```\n[f](in-a-fence.md)\n```\n[g]: g.md\n")
    assert sorted(_relative_links(md)) == ["a.md", "g.md", "img/b.png"]
