"""Stage 2 as two "nodes" on this machine: under srun's variables and under torchrun --nnodes 2.

Every node is one process here (gloo on the CPU); the launcher's variables are the ones a real
``srun`` task or ``torchrun`` worker gets. The checks: the experiment directory is prepared by
one process, both ranks end with the same weights, the validation loss is the one of the whole
validation set (reduced over both ranks), and a job whose node is killed resumes when it is
started again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from dist_helpers import free_port, free_port_job_id, srun_env, torchrun_cmd
from fake_trees import make_librimix_tree
from recipe_helpers import REPO, tiny_overrides

from asteroid_tdanet.data import make_dataset
from asteroid_tdanet.data.prepare import prepare
from asteroid_tdanet.recipes.training import make_loss, read_history

CONF = REPO / "egs" / "librimix" / "TDANet" / "conf" / "tdanet.yml"
HELPER = REPO / "tests" / "dist_helpers.py"
TIMEOUT = 300


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    # 6 mixtures per split: 3 per rank, one training step of batch 2 per rank and epoch.
    root = make_librimix_tree(tmp_path_factory.mktemp("raw"), n_per_split=6, seconds=1.0)
    out = tmp_path_factory.mktemp("data")
    prepare("librimix", root, out, sample_rate=8000, progress=False)
    return out


def train_args(data_dir: Path, exp: Path, epochs: int) -> list[str]:
    return [
        "--conf",
        str(CONF),
        "--data_dir",
        str(data_dir),
        "--exp_dir",
        str(exp),
        "--gpus",
        "cpu",
        "--progress_bar",
        "no",
        *tiny_overrides("TDANet", **{"training.epochs": str(epochs)}),
    ]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    with open(log, "w") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def finish(procs: list[subprocess.Popen], logs: list[Path]) -> list[str]:
    texts = []
    for proc, log in zip(procs, logs, strict=True):
        try:
            proc.wait(TIMEOUT)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        texts.append(log.read_text())
        assert proc.returncode == 0, texts[-1][-4000:]
    return texts


def valid_losses(data_dir: Path, weights: dict[str, torch.Tensor]) -> list[float]:
    """PIT negative SI-SDR of every validation mixture (3 s crops), computed here."""
    from asteroid_tdanet.recipes.config import build_model, load_conf

    conf = load_conf(CONF, tiny_overrides("TDANet"))
    model = build_model(conf)
    model.load_state_dict(weights)
    model.eval()
    loss = make_loss("pit_neg_sisdr")
    data = conf["data"]
    valid = make_dataset(
        "librimix", data_dir, "valid", sample_rate=8000, n_src=2, segment=data["valid_segment"]
    )
    with torch.no_grad():
        return [loss(model(mix[None]), refs[None]).item() for mix, refs in valid]


def check_two_node_run(data_dir: Path, exp: Path, dumps: Path, logs: list[str]) -> None:
    ranks = [torch.load(dumps / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [d["world_size"] for d in ranks] == [2, 2]
    # One process prepared the directory; the other one only checked it.
    joined = "".join(logs)
    assert joined.count("prepared by global rank 0") == 1
    assert "prepared by global rank 0" in logs[0]
    assert "world size 2; per-device batch 2 x accumulate 1 -> effective batch 4" in logs[0]
    assert sorted(p.name for p in (exp / "train_log").iterdir() if p.is_dir()) == []
    # DDP kept the replicas equal.
    for key, value in ranks[0]["state_dict"].items():
        torch.testing.assert_close(ranks[1]["state_dict"][key], value, rtol=0, atol=0)
    last = torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == ranks[0]["global_step"] == 2  # 1 step an epoch, 2 epochs
    weights = {k[len("model.") :]: v for k, v in last["state_dict"].items()}
    for key, value in weights.items():
        torch.testing.assert_close(ranks[0]["state_dict"][key], value, rtol=0, atol=0)
    # The validation loss of the whole set (each rank saw half of it), on both ranks.
    losses = valid_losses(data_dir, weights)
    whole = sum(losses) / len(losses)
    halves = [sum(losses[r::2]) / 3 for r in (0, 1)]  # DistributedSampler: rank r, r+2, r+4
    assert min(abs(h - whole) for h in halves) > 1e-3  # the check below can tell them apart
    history = read_history(exp / "train_log" / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1]
    assert history[-1]["val_loss"] == pytest.approx(whole, abs=1e-4)
    for rank in ranks:
        assert rank["val_loss"] == pytest.approx(whole, abs=1e-4)
    assert (exp / "best_model.pth").is_file() and (exp / "conf.yml").is_file()


@pytest.mark.slow
def test_stage2_on_two_srun_nodes(data_dir: Path, tmp_path: Path):
    exp, dumps = tmp_path / "exp" / "tdanet", tmp_path / "dumps"
    dumps.mkdir()
    job_id = free_port_job_id()
    cmd = [sys.executable, str(HELPER), str(dumps), *train_args(data_dir, exp, epochs=2)]
    logs = [tmp_path / f"task{r}.log" for r in (0, 1)]
    procs = [start(cmd, srun_env(r, 2, job_id), logs[r]) for r in (0, 1)]
    texts = finish(procs, logs)
    assert "launched by slurm: global rank 0 of 2 (node 0 of 2" in texts[0]
    check_two_node_run(data_dir, exp, dumps, texts)


@pytest.mark.slow
def test_stage2_on_two_torchrun_nodes(data_dir: Path, tmp_path: Path):
    exp, dumps = tmp_path / "exp" / "tdanet", tmp_path / "dumps"
    dumps.mkdir()
    port = free_port()
    script = [str(HELPER), str(dumps), *train_args(data_dir, exp, epochs=2)]
    logs = [tmp_path / f"node{r}.log" for r in (0, 1)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    procs = [start(torchrun_cmd(r, 2, port, script), env, logs[r]) for r in (0, 1)]
    texts = finish(procs, logs)
    assert "launched by torchrun: global rank 0 of 2 (node 0 of 2" in texts[0]
    check_two_node_run(data_dir, exp, dumps, texts)


@pytest.mark.slow
def test_a_requeued_srun_job_resumes_after_a_node_is_killed(data_dir: Path, tmp_path: Path):
    exp = tmp_path / "exp" / "tdanet"
    last = exp / "checkpoints" / "last.ckpt"
    epochs = 8
    cmd = [sys.executable, str(REPO / "local" / "train.py"), *train_args(data_dir, exp, epochs)]
    job_id = free_port_job_id()
    logs = [tmp_path / f"task{r}.log" for r in (0, 1)]
    procs = [start(cmd, srun_env(r, 2, job_id), logs[r]) for r in (0, 1)]
    try:
        deadline = time.monotonic() + TIMEOUT
        while not last.exists() and procs[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert last.exists(), logs[0].read_text()[-4000:]
        os.killpg(procs[1].pid, signal.SIGKILL)  # node 1 is lost
        # srun --kill-on-bad-exit (local/slurm/train.sbatch) then ends the job step's other task.
        os.killpg(procs[0].pid, signal.SIGKILL)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert killed_at < epochs - 1

    # SLURM requeues the job: the same command again, with SLURM_RESTART_COUNT=1.
    logs = [tmp_path / f"requeued{r}.log" for r in (0, 1)]
    procs = [start(cmd, srun_env(r, 2, job_id, restart=1), logs[r]) for r in (0, 1)]
    texts = finish(procs, logs)
    assert f"slurm restart 1: resuming from {last}" in texts[0]
    history = read_history(exp / "train_log" / "history.csv")
    assert [r["epoch"] for r in history] == list(range(epochs))
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["epoch"] == epochs - 1 and state["global_step"] == epochs  # steps carried over
    assert (exp / "best_model.pth").is_file()
