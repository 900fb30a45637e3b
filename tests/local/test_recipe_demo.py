"""The offline demo recipe (egs/mini2mix/TDANet, what `make demo` runs), end to end.

The first test runs every stage on a very small Mini2Mix with a tiny TDANet for one epoch and
checks every artefact (the demo conf trains with dynamic mixing and speed perturbation, so this
also runs them through the recipe); the slow test runs the recipe exactly as `make demo` does
and checks the bar: at most 15 minutes on the 2-core machine and a test SI-SNRi of at least
6.5 dB on the 200 fixed test mixtures of unseen voices. CI runs it (`make test`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recipe_helpers import REPO, tiny_overrides

RUN = REPO / "egs" / "mini2mix" / "TDANet" / "run.sh"


def run_demo(*options: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", str(RUN), *options], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert out.returncode == 0, f"{out.stdout[-4000:]}\n{out.stderr[-6000:]}"
    return out


def check_demo_outputs(exp_root: Path, out: subprocess.CompletedProcess) -> dict:
    exp = exp_root / "tdanet"
    assert "| experiment | model | SI-SNRi (dB) |" in out.stdout  # the table in the terminal
    for name in (
        "training_curve.png",
        "best_model.pth",
        "checkpoints/last.ckpt",
        "results/final_metrics.json",
        "results/all_metrics.csv",
        "publish/pytorch_model.bin",
        "publish/README.md",
    ):
        assert (exp / name).is_file(), name
    examples = sorted((exp / "results" / "examples").iterdir())
    assert examples
    for name in (
        "separation.png",
        "mixture.wav",
        "s1.wav",
        "s2.wav",
        "s1_estimate.wav",
        "s2_estimate.wav",
    ):
        assert (examples[0] / name).is_file(), name
    for name in ("compare.md", "compare.csv", "compare.png"):
        assert (exp_root / name).is_file(), name
    final = json.loads((exp / "results" / "final_metrics.json").read_text())
    for key in ("si_sdr_imp", "sdr_imp", "stoi"):
        assert final[key]["mean"] is not None and math.isfinite(final[key]["mean"]), key
    return final


def test_demo_recipe_small_budget_end_to_end(tmp_path: Path):
    train_opts = tiny_overrides("TDANet", **{"data.segment": "1.0", "evaluation.n_examples": "1"})
    out = run_demo(
        "--storage_dir",
        str(tmp_path / "raw"),
        "--data_dir",
        str(tmp_path / "data"),
        "--exp_root",
        str(tmp_path / "exp"),
        "--download_opts",
        "--n-train 8 --n-dev 2 --n-test 2",
        "--train_opts",
        " ".join(train_opts),
        "--eval_opts",
        "--jobs 1 --progress_bar no",
        "--compare_opts",
        "--rtf_repeats 1",
        timeout=900,
    )
    final = check_demo_outputs(tmp_path / "exp", out)
    assert final["si_sdr_imp"]["count"] == 2


@pytest.mark.slow
def test_demo_recipe_default_meets_the_bar(tmp_path: Path):
    start = time.monotonic()
    out = run_demo(
        "--storage_dir",
        str(tmp_path / "raw"),
        "--data_dir",
        str(tmp_path / "data"),
        "--exp_root",
        str(tmp_path / "exp"),
        timeout=1800,
    )
    minutes = (time.monotonic() - start) / 60
    final = check_demo_outputs(tmp_path / "exp", out)
    print(f"demo: {minutes:.1f} min, test SI-SNRi {final['si_sdr_imp']['mean']:.2f} dB")
    assert final["si_sdr_imp"]["count"] == 200
    assert final["si_sdr_imp"]["mean"] >= 6.5
    assert minutes <= 15.0
