"""Every README number that comes from a measurement is a link to the result file holding it.

The convention: ``[5.41 dB](results/demo.json "test/si_sdr_imp")`` (path relative to the
Markdown file, title = the value's key path in the JSON, ``/``-separated, list items by index),
optionally scaled for display: ``[40%](results/bench.json "cpu/ratio x100")``. The number in the
link text must equal the value rounded to the decimals shown. Result files carry the provenance
header of :mod:`asteroid_tdanet.provenance`; their command is a ``make`` target whose recipe writes
that very file; their commit is an ancestor of ``HEAD`` and was clean; their machine names the
CPU precisely (``cpu_identity``). A file that cannot meet the last two yet (an expensive study not
re-run since) is listed, with the reason, in the "Awaiting re-measurement" table of
results/README.md, and only then accepted.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from asteroid_tdanet.provenance import HEADER_KEYS, hosts_of, provenance, write_result
from asteroid_tdanet.studies.stale import make_targets, study_target

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


# The checks a listed file may be excused from, as the README's table names them.
WAIVABLE = ("cpu_identity", "clean commit")
WAIVER_ROW = re.compile(r"^\|\s*`([^`]+\.json)`\s*\|([^|]*)\|([^|]*)\|\s*$")


def waivers(readme: str) -> dict[str, tuple[set[str], str]]:
    """``{file: ({waived checks}, reason)}`` from the README's "Awaiting re-measurement" table."""
    section = readme.partition("## Awaiting re-measurement")[2].split("\n## ")[0]
    found = {}
    for line in section.splitlines():
        match = WAIVER_ROW.match(line.strip())
        if match:
            checks = {c.strip().strip("`") for c in match.group(2).split(",") if c.strip()}
            found[match.group(1)] = (checks, match.group(3).strip())
    return found


def provenance_problems(
    name: str, data: dict, makefile: str, waived: set[str], repo: Path = REPO
) -> list[str]:
    """Why a result file's header can't be trusted (empty when it can)."""
    problems = []
    missing = [key for key in HEADER_KEYS if key not in data]
    if missing:
        return [f"lacks {missing}"]
    if not (data["machine"].get("cpu") and data["machine"].get("cores")):
        problems.append("machine names no CPU or cores")
    if "torch" not in data["versions"]:
        problems.append("versions lack torch")
    target = study_target(data)
    recipe = make_targets(makefile).get(target or "")
    if target is None:
        problems.append(f"command {data['command']!r} is not a make target")
    elif recipe is None:
        problems.append(f"Makefile has no target {target}")
    elif f"results/{name}" not in recipe and "--out-dir results" not in recipe:
        problems.append(f"`make {target}` does not write results/{name}")
    problems += stamp_problems("", data["machine"], str(data["commit"]), target, waived, repo)
    for key, entry in hosts_of(data).items():
        # Figures kept per host carry the date, commit and machine they were measured at.
        lacking = [field for field in ("date", "commit", "machine") if field not in entry]
        if lacking:
            problems.append(f"hosts entry {key!r} lacks {lacking}")
            continue
        where = f"hosts entry {key!r}: "
        problems += stamp_problems(
            where, entry["machine"], str(entry["commit"]), target, waived, repo
        )
    return problems


def stamp_problems(
    where: str, machine: dict, commit: str, target: str | None, waived: set[str], repo: Path
) -> list[str]:
    """Why a measurement's machine and commit can't be trusted (empty when they can)."""
    problems = []
    identity = machine.get("cpu_identity")
    has_identity = bool(identity and identity.get("model") and "flags" in identity)
    clean = not commit.endswith("+dirty")
    for check, ok in (("cpu_identity", has_identity), ("clean commit", clean)):
        if ok and check in waived and not where:
            problems.append(f"passes `{check}`: remove it from results/README.md's waivers")
        elif not ok and check not in waived:
            seen = commit if check == "clean commit" else "no cpu_identity"
            problems.append(
                f"{where}fails `{check}` ({seen}): "
                f"re-run `make {target}`, or list it with the reason in results/README.md"
            )
    ancestor = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit.removesuffix("+dirty"), "HEAD"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if ancestor.returncode != 0:
        problems.append(f"{where}commit {commit[:12]} is not an ancestor of HEAD")
    return problems


README = REPO / "results" / "README.md"


@pytest.mark.parametrize("path", result_files(), ids=lambda p: p.name)
def test_result_file_has_trustworthy_provenance(path: Path):
    excused = waivers(README.read_text())
    waived = excused.get(path.name, (set(), ""))[0]
    makefile = (REPO / "Makefile").read_text()
    problems = provenance_problems(path.name, json.loads(path.read_text()), makefile, waived)
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_every_waiver_names_a_file_a_known_check_and_a_reason():
    readme = README.read_text()
    assert "## Awaiting re-measurement" in readme, "results/README.md lost its waiver section"
    excused = waivers(readme)
    names = {path.name for path in result_files()}
    for name, (checks, reason) in excused.items():
        assert name in names, f"results/README.md waives {name}, which does not exist"
        assert checks and checks <= set(WAIVABLE), f"{name}: unknown checks {checks}"
        assert len(reason) > 20, f"{name}: say why it was not re-measured"


def test_provenance_checks_catch_each_flaw(tmp_path: Path):
    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True)
        return run.stdout.strip()

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git("rev-parse", "HEAD")
    makefile = "results-x: venv\n\t$(PY) -m x \\\n\t\t--out results/x.json\n"
    good = {
        "command": "make results-x",
        "date": "2026-01-01T00:00:00Z",
        "machine": {"cpu": "C", "cores": 2, "cpu_identity": {"model": "C", "flags": ["avx2"]}},
        "versions": {"torch": "2"},
        "commit": head,
    }

    def problems(data: dict, name: str = "x.json", waived: frozenset = frozenset()) -> str:
        return "; ".join(provenance_problems(name, data, makefile, set(waived), tmp_path))

    assert problems(good) == ""
    assert "does not write results/y.json" in problems(good, "y.json")
    assert "no target results-z" in problems({**good, "command": "make results-z"})
    assert "not an ancestor" in problems({**good, "commit": "1" * 40})
    dirty = {**good, "commit": head + "+dirty"}
    assert "fails `clean commit`" in problems(dirty)
    assert problems(dirty, waived={"clean commit"}) == ""
    old_machine = {**good, "machine": {"cpu": "C", "cores": 2}}
    assert "fails `cpu_identity`" in problems(old_machine)
    assert problems(old_machine, waived={"cpu_identity"}) == ""
    assert "remove it from" in problems(good, waived={"cpu_identity"})  # a waiver gone stale
    # Figures kept per host are checked as the header is, each with its own commit.
    entry = {key: good[key] for key in ("date", "commit", "machine")}
    assert problems({**good, "hosts": {"A, 2 cores": entry}}) == ""
    far = {"A, 2 cores": {**entry, "commit": "2" * 40}}
    assert "hosts entry 'A, 2 cores': commit 222222222222 is not an ancestor" in problems(
        {**good, "hosts": far}
    )
    dirty_entry = {"A, 2 cores": {**entry, "commit": head + "+dirty"}}
    assert "hosts entry 'A, 2 cores': fails `clean commit`" in problems(
        {**good, "hosts": dirty_entry}
    )
    bare = {"A, 2 cores": {"ratios": {}}}
    assert "hosts entry 'A, 2 cores' lacks ['date', 'commit', 'machine']" in problems(
        {**good, "hosts": bare}
    )


def test_waivers_are_read_from_their_section_only():
    readme = (
        "| `a.json` | cpu_identity | elsewhere |\n## Awaiting re-measurement\n\n"
        "| file | checks | why |\n|---|---|---|\n"
        "| `b.json` | cpu_identity, clean commit | measured before CPUs were identified |\n"
        "## Next\n| `c.json` | cpu_identity | later |\n"
    )
    assert waivers(readme) == {
        "b.json": ({"cpu_identity", "clean commit"}, "measured before CPUs were identified")
    }


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
