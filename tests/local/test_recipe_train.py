"""local/train.py as a process: kill and resume, DDP over two CPU processes (gloo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fake_trees import make_librimix_tree
from recipe_helpers import REPO, tiny_overrides

from asteroid_tdanet.data.prepare import prepare
from asteroid_tdanet.recipes.training import read_history

CONF = REPO / "egs" / "librimix" / "TDANet" / "conf" / "tdanet.yml"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = make_librimix_tree(tmp_path_factory.mktemp("raw"), n_per_split=6, seconds=1.0)
    out = tmp_path_factory.mktemp("data")
    prepare("librimix", root, out, sample_rate=8000, progress=False)
    return out


def train_cmd(data_dir: Path, exp: Path, *extra: str, epochs: int = 1) -> list[str]:
    return [
        sys.executable,
        str(REPO / "local" / "train.py"),
        "--conf",
        str(CONF),
        "--data_dir",
        str(data_dir),
        "--exp_dir",
        str(exp),
        "--progress_bar",
        "no",
        *tiny_overrides("TDANet", **{"training.epochs": str(epochs)}),
        *extra,
    ]


@pytest.mark.slow
def test_a_killed_run_resumes_without_losing_an_epoch(data_dir: Path, tmp_path: Path):
    exp = tmp_path / "exp" / "tdanet"
    last = exp / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        train_cmd(data_dir, exp, epochs=4),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert last.exists(), "no last.ckpt before the first kill"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # as a crash or an out-of-time job would
        proc.wait()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert killed_at < 3

    out = subprocess.run(
        train_cmd(data_dir, exp, "--resume", "yes", epochs=4),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "resuming from" in out.stderr
    history = read_history(exp / "train_log" / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1, 2, 3]
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["epoch"] == 3 and len(state["history"]) == 4
    assert (exp / "best_model.pth").is_file()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(data_dir: Path, tmp_path: Path):
    exp = tmp_path / "exp" / "ddp"
    out = subprocess.run(
        train_cmd(data_dir, exp, "--cpu_procs", "2"), capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "MEMBER: 2/2" in out.stderr  # Lightning started two processes
    assert (exp / "best_model.pth").is_file()
    history = read_history(exp / "train_log" / "history.csv")
    assert len(history) == 1
    # 6 training mixtures, batch 2 per process, 2 processes: 1 or 2 steps per process.
    state = torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] in (1, 2)


def test_cli_errors_are_one_readable_line(data_dir: Path, tmp_path: Path):
    out = subprocess.run(
        train_cmd(data_dir, tmp_path / "e", "--optim.lr", "fast"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1
    assert "ERROR: --optim.lr 'fast': not a valid float" in out.stderr
    assert "Traceback" not in out.stderr
