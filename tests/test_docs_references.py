"""Every ``docs/...`` reference in the repository names a file of its ``docs/`` folder, every numbered
section it cites exists there, and every relative link inside ``docs/`` resolves."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCANNED = ("baselines", "kernels", "mmbench", "tests", "scripts")
# ``docs/<file>.md`` optionally followed (within a few characters) by "section 3.5" or "§6.2".
REFERENCE = re.compile(r"docs/([\w.-]+\.md)(?:\W{0,4}(?:section |§ ?)(\d+(?:\.\d+)?))?")


def _sources():
    suffixes = {".py", ".md", ".yaml"}
    files = [ROOT / "README.md"] + sorted(p for d in SCANNED for p in (ROOT / d).rglob("*") if p.suffix in suffixes)
    return [p for p in files if p.is_file() and p.resolve() != Path(__file__).resolve()]


def _references():
    refs = []
    for path in _sources():
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in REFERENCE.finditer(line):
                refs.append((f"{path.relative_to(ROOT)}:{line_no}", match.group(1), match.group(2)))
    return refs


def _section_numbers(doc: Path):
    return {m.group(1) for m in re.finditer(r"^#+ (\d+(?:\.\d+)?)\b", doc.read_text(encoding="utf-8"), re.M)}


def test_the_repository_refers_to_its_docs():
    assert len(_references()) >= 30  # the scan itself works (the code cites docs/ in many places)


@pytest.mark.parametrize("where,name,section", _references())
def test_reference_resolves(where, name, section):
    doc = DOCS / name
    assert doc.is_file(), f"{where} refers to docs/{name}, which does not exist"
    if section is not None:
        assert section in _section_numbers(doc), f"{where} cites section {section} of docs/{name}: no such heading"


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_links_between_docs_resolve(doc):
    text = doc.read_text(encoding="utf-8")
    for target, anchor in re.findall(r"\]\(([^)#\s]+\.md)(?:#([\w-]+))?\)", text):
        linked = (doc.parent / target).resolve()
        assert linked.is_file(), f"{doc.name} links to {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{doc.name} links to {target}#{anchor}, which has no such heading"
