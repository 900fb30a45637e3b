"""The provenance header's commit stamp (asteroid_tdanet.provenance)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from asteroid_tdanet.provenance import git_commit


def git(repo: Path, *args: str) -> str:
    run = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return run.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_a_changed_result_file_is_not_dirty_but_changed_code_is(repo: Path):
    head = git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head
    (repo / "results" / "r.json").write_text('{"partial": true}\n')  # a study saving as it goes
    assert git_commit(repo) == head
    (repo / "code.py").write_text("x = 2\n")
    assert git_commit(repo) == head + "+dirty"
