"""The pages people read hold together: every relative link and anchor in README.md, CONTRIBUTING.md and
docs/*.md points to a file and a heading that exist (GitHub's anchor rules), long pages open with a table of
contents, and the README stays short and opens with the two commands CI and a new user run first."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
GENERATED = {ROOT / "docs" / "configuration.md"}  # written by tools/config_doc.py: its layout is the tool's
README_MAX_BYTES = 12_000
LONG_PAGE_LINES = 120  # longer than a screen or two: needs a table of contents

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks and HTML comments, with their 1-based numbers."""
    text = HTML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and match and match.group(1) == fence:
            fence = None
        elif fence is None:
            lines.append((number, line))
    return lines


def heading_text(raw: str) -> str:
    """A heading's text as GitHub renders it: code spans kept as their content, links as their text."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), raw)
    text = INLINE_LINK.sub(lambda m: m.group(1), text)
    return text.replace("**", "").replace("*", "")


def slug(text: str) -> str:
    """GitHub's anchor for a heading's text: lower-case, punctuation dropped (letters, digits, `_`, `-` and
    spaces kept), each space a dash."""
    lowered = heading_text(text).strip().lower()
    kept = "".join(ch for ch in lowered if ch.isalnum() or ch in "_- ")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub makes for the page's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[Link]:
    """The page's link targets, outside code (fenced blocks and code spans)."""
    found: list[Link] = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            found.append(Link(page, number, definition.group(1)))
            continue
        without_code = CODE_SPAN.sub("", line)
        found.extend(Link(page, number, m.group(2)) for m in INLINE_LINK.finditer(without_code))
    return found


def problem(link: Link) -> str | None:
    """Why a relative link does not resolve, or None when it does (absolute links are not followed)."""
    target = link.target
    if not target or SCHEME.match(target) or target.startswith("//"):
        return None if target else "an empty link"
    path_part, _, anchor = target.partition("#")
    destination = (link.page.parent / path_part).resolve() if path_part else link.page
    if ROOT not in destination.parents and destination != ROOT:
        return f"{path_part} leaves the repository"
    if not destination.exists():
        return f"{path_part} does not exist"
    if anchor:
        if destination.suffix != ".md" or destination.is_dir():
            return f"#{anchor} points into {path_part}, which has no headings"
        if anchor not in anchors(destination):
            return f"#{anchor} is not a heading of {destination.relative_to(ROOT)}"
    return None


def fenced_commands(text: str) -> list[str]:
    """The commands of the page's fenced code blocks, in order (comment and blank lines skipped, a trailing
    `# comment` dropped)."""
    commands: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            continue
        if fence is not None and match and match.group(1) == fence:
            fence = None
            continue
        if fence is not None:
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


# -- the checker's own rules, on known cases ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Bounds: what one bad answer, record or peer can cost", "bounds-what-one-bad-answer-record-or-peer-can-cost"),
        ("1. Store the secrets", "1-store-the-secrets"),
        ("Limits: the main API's quota", "limits-the-main-apis-quota"),
        ("Several Scalingo accounts (token shards)", "several-scalingo-accounts-token-shards"),
        ("`STATE_PATH` and its default", "state_path-and-its-default"),
        ("2,000 apps of one database", "2000-apps-of-one-database"),
        ("A [linked](other.md) heading", "a-linked-heading"),
        ("Who can read what it posts and stores", "who-can-read-what-it-posts-and-stores"),
    ],
)
def test_slug_follows_githubs_anchor_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_checker_finds_broken_links_and_ignores_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a small repository whose page links to a file, a heading, a missing file and a missing heading,
    # with a link inside a code span and another inside a fenced block (neither is a link)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Here\n\n"
        "[ok](other.md) [ok](other.md#a-section) [ok](other.md#a-section-1) [ok](#here)\n"
        "[bad](missing.md) [bad](other.md#nowhere) [bad](#not-here) [out](../outside.md)\n"
        "`[code](missing-too.md)` <https://example.com> [web](https://example.com/x#y)\n"
        "```\n[fenced](missing-three.md)\n```\n"
    )
    # WHEN the checker reads it
    found = {link.target: problem(link) for link in links(page)}
    # THEN exactly the four bad ones are reported, and code is not read as links
    assert sorted(t for t, p in found.items() if p) == ["#not-here", "../outside.md", "missing.md", "other.md#nowhere"]
    assert "missing-too.md" not in found
    assert "missing-three.md" not in found


def test_fenced_commands_skip_comments_and_blank_lines() -> None:
    text = "x\n```sh\n# a comment\n\nmake demo   # the story\n```\n\n```sh\nmake test\n```\n"
    assert fenced_commands(text) == ["make demo", "make test"]


# -- the pages ---------------------------------------------------------------------------------------------


def test_the_pages_exist() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    expected = {
        "README.md",
        "CONTRIBUTING.md",
        "docs/on-call.md",
        "docs/deploying.md",
        "docs/running-anywhere.md",
        "docs/operations.md",
        "docs/configuration.md",
    }
    assert expected <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [f"line {link.line}: {link.target}: {why}" for link in links(page) if (why := problem(link))]
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", [p for p in PAGES if p not in GENERATED], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_long_pages_open_with_a_table_of_contents(page: Path) -> None:
    lines = prose_lines(page.read_text(encoding="utf-8"))
    if len(page.read_text(encoding="utf-8").splitlines()) <= LONG_PAGE_LINES:
        pytest.skip("short enough to read without one")
    sections = [(n, slug(m.group(2))) for n, line in lines if (m := HEADING.match(line)) and m.group(1) == "##"]
    assert sections, "a long page with no sections"
    first_section = sections[0][0]
    contents = {
        link.target.removeprefix("#")
        for link in links(page)
        if link.line < first_section and link.target.startswith("#")
    }
    missing = [anchor for _, anchor in sections if anchor not in contents]
    assert not missing, f"the table of contents before the first section misses: {missing}"


def test_readme_stays_short() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size < README_MAX_BYTES, f"README.md is {size} bytes: move detail to docs/"


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    # The first two commands of the page are `make demo`, then `make test`...
    assert fenced_commands(text)[:2] == ["make demo", "make test"]
    # ...and they open it: before the first fenced block, only the title and at most one paragraph.
    before = text.split("```", 1)[0]
    blocks = [b for b in re.split(r"\n\s*\n", before.strip()) if b.strip()]
    assert blocks[0].startswith("# "), "the README starts with its title"
    assert len(blocks) <= 2, f"{len(blocks) - 1} paragraphs before `make demo`: one at most"
    assert "##" not in before, "a section before the two commands"
