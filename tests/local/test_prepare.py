"""Stage 1 entry points (local/prepare_<name>.py) run as scripts, in-process via runpy."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
from fake_trees import make_librimix_tree, make_lrs2_tree, make_wham_tree

LOCAL = Path(__file__).resolve().parents[2] / "local"
SCRIPTS = {
    "prepare_librimix.py": make_librimix_tree,
    "prepare_wham.py": make_wham_tree,
    "prepare_lrs2_2mix.py": make_lrs2_tree,
}


def run(script: str, *args: str, monkeypatch) -> int:
    monkeypatch.setattr(sys, "argv", [str(LOCAL / script), *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(LOCAL / script), run_name="__main__")
    return exit_info.value.code


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_prepares_a_good_tree(tmp_path, monkeypatch, script):
    root = SCRIPTS[script](tmp_path / "root", n_per_split=2)
    code = run(
        script, "--root", str(root), "--out", str(tmp_path / "data"), monkeypatch=monkeypatch
    )
    assert code == 0
    meta = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert meta["counts"] == {"train": 2, "valid": 2, "test": 2}


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_bad_tree_exits_with_the_reason(tmp_path, monkeypatch, capsys, script):
    root = SCRIPTS[script](tmp_path / "root", n_per_split=2, bad="missing_file")
    code = run(
        script, "--root", str(root), "--out", str(tmp_path / "data"), monkeypatch=monkeypatch
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 1 bad file(s) in split 'test'") and "missing" in err


def test_demo_layout_and_options(tmp_path, monkeypatch):
    # The mini2mix demo writes the Libri2Mix layout; options reach prepare().
    root = make_librimix_tree(tmp_path / "root", n_per_split=1, sample_rate=16000, metadata=False)
    args = ["--root", str(root), "--out", str(tmp_path / "data"), "--sample_rate", "16000"]
    assert run("prepare_librimix.py", *args, "--mode", "min", monkeypatch=monkeypatch) == 0
    assert json.loads((tmp_path / "data" / "dataset.json").read_text())["sample_rate"] == 16000


def test_help(monkeypatch, capsys):
    assert run("prepare_wham.py", "--help", monkeypatch=monkeypatch) == 0
    assert "--root" in capsys.readouterr().out
