"""The offline demo recipe (egs/mini2mix/TDANet, what `make demo` runs), end to end.

The first test runs every stage on a very small Mini2Mix with a tiny TDANet for one epoch and
checks every artefact (the demo conf trains with dynamic mixing and speed perturbation, so this
also runs them through the recipe); the slow test runs the recipe exactly as `make demo` does
and checks the bar: the whole step budget trained, on two processes where there are two cores,
and a test SI-SNRi of at least 6.5 dB on the 200 fixed test mixtures of unseen voices. CI runs it
(`make test`, alone, after the rest of the suite). The demo's training budget
is a number of steps, so its score does not depend on the machine or its load; how long it took
is a measurement, not a check: with ``TDANET_TEST_RECORDS=DIR`` the test writes its minutes and
score to ``DIR/demo.json``, which ``make results-ci`` puts in results/ci.json per host.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
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


def record(name: str, values: dict[str, Any]) -> Path | None:
    """Write ``values`` to ``$TDANET_TEST_RECORDS/<name>.json`` when that folder is given."""
    folder = os.environ.get("TDANET_TEST_RECORDS")
    if not folder:
        return None
    path = Path(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def test_demo_recipe_small_budget_end_to_end(tmp_path: Path):
    train_opts = tiny_overrides(
        "TDANet",
        **{"data.segment": "1.0", "data.mixtures_per_epoch": "8", "evaluation.n_examples": "1"},
    )
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
        timeout=5400,  # a hang guard only (CI's own limit); the time is recorded, not checked
    )
    minutes = (time.monotonic() - start) / 60
    final = check_demo_outputs(tmp_path / "exp", out)
    print(f"demo: {minutes:.1f} min, test SI-SNRi {final['si_sdr_imp']['mean']:.2f} dB")
    conf = yaml.safe_load((tmp_path / "exp" / "tdanet" / "conf.yml").read_text())
    last = torch.load(
        tmp_path / "exp" / "tdanet" / "checkpoints" / "last.ckpt",
        map_location="cpu",
        weights_only=True,
    )
    assert last["global_step"] == conf["training"]["max_steps"]  # the whole budget was trained
    assert final["si_sdr_imp"]["count"] == 200
    assert final["si_sdr_imp"]["mean"] >= 6.5
    # run.sh trains on two processes (one per core) wherever there are two cores.
    processes = training_processes(out.stdout + out.stderr)
    assert processes == min(2, len(os.sched_getaffinity(0)))
    record(
        "demo",
        {
            "minutes": round(minutes, 2),
            "si_sdr_imp": round(final["si_sdr_imp"]["mean"], 3),
            "steps": last["global_step"],
            "training_processes": processes,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
    )


def training_processes(log: str) -> int:
    """The world size the training stage reported ("... world size 2; ...")."""
    sizes = {int(size) for size in re.findall(r"\bworld size (\d+)", log)}
    assert len(sizes) == 1, f"expected one world size in the training log, found {sizes}"
    return sizes.pop()


def test_the_world_size_is_read_from_the_training_log():
    line = "training on the CPU (2 process(es)): no GPU is visible; world size 2; per-device"
    assert training_processes(f"a\n{line}\nb") == 2
    with pytest.raises(AssertionError, match="one world size"):
        training_processes("no training here")


def test_the_record_goes_where_ci_time_reads_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TDANET_TEST_RECORDS", raising=False)
    assert record("demo", {"minutes": 1.0}) is None  # nothing written outside a CI-time run
    monkeypatch.setenv("TDANET_TEST_RECORDS", str(tmp_path / "records"))
    path = record("demo", {"minutes": 12.5})
    assert path == tmp_path / "records" / "demo.json"
    assert json.loads(path.read_text()) == {"minutes": 12.5}


def test_demo_conf_trains_a_step_budget_with_both_augmentations():
    conf = yaml.safe_load((RUN.parent / "conf" / "tdanet.yml").read_text())
    training = conf["training"]
    # A wall-clock cap would make the demo's score depend on the machine's load.
    assert training["max_minutes"] is None and training["max_steps"] >= 1
    assert training["early_stop_patience"] is None  # the schedule runs to its end
    assert conf["data"]["dynamic_mixing"] is True and conf["data"]["speed_perturb"]
    # Validation at whole epochs: the budget ends on an epoch boundary, so its last steps are
    # validated and can be kept as the best model.
    steps_per_epoch = conf["data"]["mixtures_per_epoch"] // conf["data"]["batch_size"]
    assert training["max_steps"] % steps_per_epoch == 0
