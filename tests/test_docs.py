"""The user documentation: short README, links that resolve, the paper's figures as published,
and none of the words that mean nothing to a user."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from asteroid_tdanet import paper

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
# Words from how the project was built, not from what a user sees.
INTERNAL = re.compile(r"\bthe bar\b|\bthe lock\b|\bVM\b|efficiency issue|development VM", re.I)


def user_docs() -> list[Path]:
    """README.md, docs/*.md and the recipe READMEs (tracked or new)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "README.md", "docs/*.md", "egs/*.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in out if not name.startswith("egs/mini2mix/sources/")]


def anchors(markdown: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"(?m)^#+\s+(.+)$", CODE.sub("", markdown.read_text()))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_readme_reads_in_minutes():
    assert len(README.read_text().splitlines()) <= 160


@pytest.mark.parametrize("doc", user_docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves_and_no_internal_word_is_left(doc: Path):
    text = doc.read_text()
    prose = CODE.sub("", text)
    assert not INTERNAL.findall(prose), INTERNAL.findall(prose)
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target):
            continue  # web addresses
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.exists(), f"{doc.relative_to(REPO)}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{doc.relative_to(REPO)}: no #{anchor}"


def test_the_readme_states_the_papers_table_2_as_published():
    rows = {
        "lrs2_2mix": "`egs/lrs2_2mix`",
        "librimix": "`egs/librimix`",
        "wham": "`egs/wham`",
    }
    text = README.read_text()
    for benchmark, name in rows.items():
        line = next(line for line in text.splitlines() if line.startswith(f"| [{name}]"))
        table = paper.paper_results(benchmark)
        expected = f"{table['tdanet']['si_snri'].value} / {table['tdanet_large']['si_snri'].value}"
        assert f"| {expected} |" in line, (line, expected)


def test_the_checker_finds_a_broken_link_and_an_internal_word(tmp_path: Path):
    doc = tmp_path / "x.md"
    doc.write_text("# Title here\n[a](missing.md) [b](#title-here) [c](#nope)\n")
    assert anchors(doc) == {"title-here"}
    assert INTERNAL.findall("measured on the 2-core VM, above the bar")
    assert not INTERNAL.findall("a virtual machine")
