"""The documentation stays true: its examples build, its links lead somewhere, its handler
reference names exactly the handlers the VTN calls, and its Python snippets parse."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xmpp_vtn.services.handlers import HANDLER_NAMES

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
CHECKED_EXAMPLES = ("minimal_vtn.py", "database_registration.py", "report_consumer.py")

# [text](target) outside code; a target with a scheme or mailto is not relative.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _prose(text: str) -> str:
    """The page without its fenced code blocks (links inside code are code)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, seen = set(), {}
    for line in _prose(page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            anchors.add(slug if count == 0 else f"{slug}-{count}")
            seen[slug] = count + 1
    return anchors


def test_the_docs_exist_and_the_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    expected = {"README.md", "concepts.md", "user-guide.md", "handlers.md", "servers.md",
                "migrating-from-openleadr.md", "troubleshooting.md"}
    assert expected <= {page.name for page in PAGES}
    for page in PAGES:
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"


@pytest.mark.parametrize("name", CHECKED_EXAMPLES)
def test_example_builds_its_vtn_with_check(name):
    result = subprocess.run([sys.executable, str(REPO / "examples" / name), "--check"], capture_output=True,
                            text=True, timeout=120, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), "XMPP_VTN_SECRET": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: VTN" in result.stdout


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_points_at_an_existing_file_and_heading(page):
    broken = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):          # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(f"{target}: no heading with that anchor in {destination.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_handler_reference_names_exactly_the_handlers_the_vtn_calls():
    text = (DOCS / "handlers.md").read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\bon_[a-z0-9_]+", text))
    assert mentioned - HANDLER_NAMES == set(), "docs/handlers.md names handlers the VTN does not know"
    # Every handler has its own row in the reference table.
    rows = set(re.findall(r"^\| `(on_[a-z0-9_]+)` \|", text, re.M))
    assert rows == set(HANDLER_NAMES), f"missing rows: {sorted(HANDLER_NAMES - rows)}; extra: {sorted(rows - HANDLER_NAMES)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_python_snippets_parse(page):
    for number, block in enumerate(PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")), start=1):
        try:
            compile(block, f"{page.name} block {number}", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as error:
            pytest.fail(f"{page.name}, python block {number}: {error}")
