"""The README and docs/ stay true to the code and to each other.

The generated tables in docs/reference.md match the code they describe, every relative
link (and its #anchor) leads somewhere, and the README stays a short entry point that
reaches every docs/ page in one click.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)


def test_reference_tables_match_settings_and_metric_catalogue() -> None:
    spec = importlib.util.spec_from_file_location("sync_readme", ROOT / "scripts/sync_readme.py")
    assert spec is not None
    assert spec.loader is not None
    sync_readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync_readme)
    reference = (ROOT / "docs/reference.md").read_text()

    assert sync_readme.synced(reference) == reference, "run: make generate"


def _prose(path: Path) -> str:
    """A Markdown file without its fenced code blocks, where brackets are not links."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def _anchors(path: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to '-'."""
    anchors: set[str] = set()
    for heading in HEADING.findall(_prose(path)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def _relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(_prose(path))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in [README, *DOCS]:
        for target in _relative_links(page):
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")

    assert broken == []


def test_the_readme_links_every_docs_page() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in _relative_links(README)}

    assert [p.name for p in DOCS if p.resolve() not in linked] == []


def test_the_readme_stays_short_and_keeps_its_two_commands() -> None:
    readme = README.read_text(encoding="utf-8")

    assert len(readme.encode()) < 12_000, "move detail into docs/ and link it"
    assert "make demo   #" in readme
    assert "make test   #" in readme
