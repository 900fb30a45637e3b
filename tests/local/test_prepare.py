"""Stage 1 entry point (local/prepare.py --dataset NAME) run as a script, in-process via runpy."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
from fake_trees import make_librimix_tree, make_lrs2_tree, make_wham_tree

LOCAL = Path(__file__).resolve().parents[2] / "local"
TREES = {"librimix": make_librimix_tree, "wham": make_wham_tree, "lrs2_2mix": make_lrs2_tree}


def run(*args: str, monkeypatch) -> int:
    script = LOCAL / "prepare.py"
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    return exit_info.value.code


@pytest.mark.parametrize("name", list(TREES))
def test_prepares_a_good_tree(tmp_path, monkeypatch, name):
    root = TREES[name](tmp_path / "root", n_per_split=2)
    out = str(tmp_path / "data")
    code = run("--dataset", name, "--root", str(root), "--out", out, monkeypatch=monkeypatch)
    assert code == 0
    meta = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert meta["counts"] == {"train": 2, "valid": 2, "test": 2} and meta["format"] == name


@pytest.mark.parametrize("name", list(TREES))
def test_bad_tree_exits_with_the_reason(tmp_path, monkeypatch, capsys, name):
    root = TREES[name](tmp_path / "root", n_per_split=2, bad="missing_file")
    out = str(tmp_path / "data")
    code = run("--dataset", name, "--root", str(root), "--out", out, monkeypatch=monkeypatch)
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 1 bad file(s) in split 'test'") and "missing" in err


def test_demo_layout_and_options(tmp_path, monkeypatch):
    # The mini2mix demo writes the Libri2Mix layout; options reach prepare().
    root = make_librimix_tree(tmp_path / "root", n_per_split=1, sample_rate=16000, metadata=False)
    args = ["--root", str(root), "--out", str(tmp_path / "data"), "--sample_rate", "16000"]
    assert run("--dataset", "librimix", *args, "--mode", "min", monkeypatch=monkeypatch) == 0
    assert json.loads((tmp_path / "data" / "dataset.json").read_text())["sample_rate"] == 16000


def test_help_lists_the_registered_data_sets(monkeypatch, capsys):
    assert run("--help", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "--root" in out and "librimix,wham,lrs2_2mix,mini2mix" in out


def test_unknown_data_set_is_refused(monkeypatch, capsys):
    assert run("--dataset", "lrs2", "--root", "r", "--out", "o", monkeypatch=monkeypatch) == 2
    assert "invalid choice: 'lrs2'" in capsys.readouterr().err
