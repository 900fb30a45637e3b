"""``make results-stale``: each study declares its code; changed code since a result is listed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from asteroid_tdanet.studies import stale

REPO = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> str:
    run = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout.strip()


def test_every_study_target_declares_code_that_exists():
    targets = stale.make_targets((REPO / "Makefile").read_text())
    studies = {t for t in targets if t.startswith("results-")} - {"results-stale"}
    studies |= {"gpu-check"}
    assert studies <= set(stale.MEASURED_CODE), studies - set(stale.MEASURED_CODE)
    for target, paths in stale.MEASURED_CODE.items():
        assert target in targets, target
        for path in paths:
            assert (REPO / path).exists(), f"{target}: {path} does not exist"


def test_a_result_is_stale_only_when_its_studys_code_changed(tmp_path, monkeypatch):
    monkeypatch.setitem(stale.MEASURED_CODE, "results-x", ["pkg/x.py", "data/"])
    for name in ("pkg/x.py", "pkg/other.py", "data/a.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "measured here")
    result = tmp_path / "results" / "x.json"
    result.parent.mkdir()
    result.write_text(
        json.dumps({"command": "make results-x", "commit": git(tmp_path, "rev-parse", "HEAD")})
    )

    (tmp_path / "pkg" / "other.py").write_text("2\n")  # not code this study measures
    git(tmp_path, "commit", "-qam", "elsewhere")
    found = stale.staleness(result, tmp_path)
    assert found.changed == [] and found.problem is None and found.target == "results-x"

    (tmp_path / "data" / "a.py").write_text("2\n")  # a file in a declared folder
    git(tmp_path, "commit", "-qam", "measured code")
    assert stale.staleness(result, tmp_path).changed == ["data/a.py"]


def test_per_host_entries_measured_earlier_are_checked_at_their_own_commit(tmp_path, monkeypatch):
    monkeypatch.setitem(stale.MEASURED_CODE, "results-x", ["x.py"])
    git(tmp_path, "init", "-q")
    (tmp_path / "x.py").write_text("1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first host measured here")
    first = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "x.py").write_text("2\n")
    git(tmp_path, "commit", "-qam", "second host measured here")
    second = git(tmp_path, "rev-parse", "HEAD")
    hosts = {"A, 2 cores": {"commit": first}, "B, 2 cores": {"commit": second}}
    result = tmp_path / "x.json"
    result.write_text(json.dumps({"command": "make results-x", "commit": second, "hosts": hosts}))
    found = stale.staleness(result, tmp_path)
    assert found.changed == [] and found.hosts == {"A, 2 cores": ["x.py"]}
    hosts["A, 2 cores"]["commit"] = "3" * 40
    result.write_text(json.dumps({"command": "make results-x", "commit": second, "hosts": hosts}))
    assert "not in this clone" in stale.staleness(result, tmp_path).hosts["A, 2 cores"][0]


def test_unknown_studies_and_commits_are_reported(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "one")
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"command": "make results-nothing", "commit": "0" * 40}))
    assert "no measured code declared" in stale.staleness(path, tmp_path).problem
    path.write_text(json.dumps({"command": "make results-ci", "commit": "1" * 40 + "+dirty"}))
    assert "not in this clone" in stale.staleness(path, tmp_path).problem


def test_make_targets_joins_continued_recipe_lines():
    makefile = (
        "A := 1\n.PHONY: a b\n# a: comment\na b: dep\n\tone \\\n\t  --out results/a.json\n"
        "c:\n\ttwo\n\nd = x: y\n"
    )
    targets = stale.make_targets(makefile)
    assert "results/a.json" in targets["a"] and targets["a"] == targets["b"]
    assert targets["c"] == "two\n" and "A" not in targets and ".PHONY" in targets


def test_prose_comments_and_docstrings_do_not_make_a_result_stale(tmp_path, monkeypatch):
    monkeypatch.setitem(stale.MEASURED_CODE, "results-x", ["egs/"])
    files = {
        "egs/README.md": "# Demo\n",
        "egs/conf.yml": "# steps\ntraining:\n  max_steps: 6000\n",
        "egs/step.py": '"""Train."""\n\n\ndef f(x):\n    """Double."""\n    return 2 * x  # why\n',
        "egs/run.sh": "echo 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "measured here")
    result = tmp_path / "r.json"
    result.write_text(
        json.dumps({"command": "make results-x", "commit": git(tmp_path, "rev-parse", "HEAD")})
    )

    def changed_after(name: str, text: str) -> list[str]:
        (tmp_path / name).write_text(text)
        git(tmp_path, "commit", "-qam", name)
        return stale.staleness(result, tmp_path).changed

    assert changed_after("egs/README.md", "# Demo, reworded\n") == []
    assert changed_after("egs/conf.yml", "# the budget\ntraining: {max_steps: 6000}\n") == []
    step = '"""Train, reworded."""\n\n\ndef f(x):\n    """Twice x."""\n    return 2 * x  # how\n'
    assert changed_after("egs/step.py", step) == []
    assert changed_after("egs/conf.yml", "training:\n  max_steps: 5000\n") == ["egs/conf.yml"]
    step = '"""Train."""\n\n\ndef f(x):\n    return 3 * x\n'
    assert changed_after("egs/step.py", step) == ["egs/conf.yml", "egs/step.py"]
    assert changed_after("egs/run.sh", "echo 1  \n") == [
        "egs/conf.yml",
        "egs/run.sh",
        "egs/step.py",
    ]
    (tmp_path / "egs" / "new.py").write_text("# a comment only\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "added")
    assert "egs/new.py" in stale.staleness(result, tmp_path).changed  # a new file always counts
