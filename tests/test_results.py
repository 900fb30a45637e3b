"""Every README number that comes from a measurement is a link to the result file holding it.

The convention: ``[5.41 dB](results/demo.json "test/si_sdr_imp")`` (path relative to the
Markdown file, title = the value's key path in the JSON, ``/``-separated, list items by index),
optionally scaled for display: ``[40%](results/bench.json "cpu/ratio x100")``. The number in the
link text must equal the value rounded to the decimals shown. Result files carry the provenance
header of :mod:`asteroid_tdanet.provenance`, and their command is a ``make`` target that exists.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from asteroid_tdanet.provenance import HEADER_KEYS, provenance, write_result

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]*results/[^)\s]+\.json)\s+\"([^\"]+)\"\)")
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")
# Code blocks and inline code show the convention; they cite nothing.
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def tracked_markdown() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in out]


def result_files() -> list[Path]:
    return sorted((REPO / "results").glob("*.json")) if (REPO / "results").is_dir() else []


def lookup(data, key_path: str):
    """The value at ``a/b/0/c`` in nested dicts and lists."""
    value = data
    for part in key_path.split("/"):
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(f"no {part!r} on the way to {key_path!r}")
    return value


def check_link(markdown: Path, text: str, target: str, title: str, root: Path = REPO) -> str | None:
    """An error message for a wrong citation, or None when the number matches."""
    where = f"{markdown.relative_to(root)}: [{text}]({target})"
    path = (markdown.parent / target).resolve()
    if not path.is_file():
        return f"{where}: result file {target} does not exist"
    key_path, _, scale_text = title.partition(" x")
    scale = float(scale_text) if scale_text else 1.0
    try:
        value = lookup(json.loads(path.read_text()), key_path.strip())
    except (KeyError, IndexError, ValueError) as err:
        return f"{where}: {err}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{where}: {key_path} is {value!r}, not a number"
    match = NUMBER.search(text)
    if match is None:
        return f"{where}: the link text holds no number"
    shown = match.group().replace(",", "")
    decimals = len(shown.partition(".")[2])
    expected = round(value * scale, decimals)
    if abs(float(shown) - expected) > 0.5 * 10**-decimals + 1e-12:
        return f"{where}: says {shown}, the result file has {value * scale:.{decimals + 2}f}"
    return None


def citations(text: str) -> list[tuple[str, str, str]]:
    """``(text, target, title)`` of every citation outside code."""
    return [m.groups() for m in LINK.finditer(CODE.sub("", text))]


def all_citations() -> list[tuple[Path, str, str, str]]:
    return [(md, *c) for md in tracked_markdown() for c in citations(md.read_text("utf-8"))]


def test_every_cited_number_equals_its_result_file():
    errors = [e for c in all_citations() if (e := check_link(*c)) is not None]
    assert not errors, "README numbers disagree with results/:\n" + "\n".join(errors)


@pytest.mark.parametrize("path", result_files(), ids=lambda p: p.name)
def test_result_file_has_provenance_and_a_make_target(path: Path):
    data = json.loads(path.read_text())
    missing = [key for key in HEADER_KEYS if key not in data]
    assert not missing, f"{path.name} lacks {missing}"
    assert data["machine"].get("cpu") and data["machine"].get("cores"), path.name
    assert "torch" in data["versions"], path.name
    command = data["command"]
    match = re.match(r"make (\S+)", command)
    assert match, f"{path.name}: command {command!r} is not a make target"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(rf"^{re.escape(match.group(1))}:", makefile, re.M), (
        f"{path.name}: Makefile has no target {match.group(1)}"
    )


def test_checker_catches_a_wrong_number(tmp_path: Path):
    # The checker itself must fail on a mismatch, a missing key and a missing file.
    result = write_result(
        tmp_path / "results" / "x.json", {"a": {"b": [1.234, 0.4]}}, provenance("make x")
    )
    md = tmp_path / "README.md"
    md.write_text("")
    assert result.is_file()
    assert check_link(md, "1.23 dB", "results/x.json", "a/b/0", tmp_path) is None
    assert check_link(md, "1.2 dB", "results/x.json", "a/b/0", tmp_path) is None
    assert check_link(md, "40%", "results/x.json", "a/b/1 x100", tmp_path) is None
    assert "says 1.24" in check_link(md, "1.24 dB", "results/x.json", "a/b/0", tmp_path)
    assert "no 'c'" in check_link(md, "1.23", "results/x.json", "a/c", tmp_path)
    assert "does not exist" in check_link(md, "1", "results/y.json", "a", tmp_path)
    assert LINK.search('see [1.23 dB](../results/x.json "a/b/0").')


def test_citations_in_code_are_examples_and_the_rest_count():
    text = (
        'e.g. `[1 dB](results/x.json "a")`,\n```\n[2 dB](results/x.json "b")\n```\n'
        'measured [3 dB](results/x.json "c").'
    )
    assert citations(text) == [("3 dB", "results/x.json", "c")]


def test_write_result_refuses_header_keys(tmp_path: Path):
    with pytest.raises(ValueError, match="header keys"):
        write_result(tmp_path / "r.json", {"date": 1}, provenance("make x"))
