"""Functions run in child processes by tests (spawned children import them by module name)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def dynamic_mixing_rank_indices(rank: int, world: int, init_file: str, out: str) -> None:
    """Join a gloo process group and write what a `DynamicMixingSampler` gives this rank."""
    from asteroid_tdanet.data import DynamicMixingSampler

    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    sampler = DynamicMixingSampler(7)  # rank and world read from the process group
    sampler.set_epoch(2)
    Path(out, f"{rank}.json").write_text(json.dumps([len(sampler), list(sampler)]))
    torch.distributed.destroy_process_group()


# --- Launch-level helpers: stage 2 as several "nodes" on this machine ---------------------------

# Variables of every launcher, removed from a child's environment before the test sets its own.
LAUNCH_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def clean_env() -> dict[str, str]:
    """This process's environment without any launcher's variables."""
    import os

    return {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCH_VARIABLES and not k.startswith(("SLURM_", "TORCHELASTIC_", "PET_"))
    }


def free_port_job_id() -> str:
    """A SLURM job id whose port (15000 + its last 4 digits, Lightning's rule) is free now.

    Drawn from the OS's randomness: training in a test seeds Python's ``random`` (seed 0), so two
    pytest workers drawing from it could pick the same port at the same time.
    """
    import random
    import socket

    draw = random.SystemRandom()
    for _ in range(200):
        job_id = draw.randint(1000, 9999)
        with socket.socket() as sock:
            try:
                sock.bind(("", 15000 + job_id))  # every address, as the rendezvous store listens
            except OSError:
                continue
        return str(4_200_000 + job_id)
    raise RuntimeError("no free port in 15000-24999")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def srun_env(rank: int, nodes: int, job_id: str, restart: int = 0) -> dict[str, str]:
    """The variables ``srun`` gives task ``rank`` of ``sbatch --nodes N --ntasks-per-node 1``.

    The node list names this machine: every "node" is a process here.
    """
    env = clean_env()
    env.update(
        SLURM_JOB_ID=job_id,
        SLURM_JOBID=job_id,
        SLURM_JOB_NAME="tdanet",
        SLURM_NNODES=str(nodes),
        SLURM_JOB_NUM_NODES=str(nodes),
        SLURM_NTASKS=str(nodes),
        SLURM_NPROCS=str(nodes),
        SLURM_NTASKS_PER_NODE="1",
        SLURM_NODEID=str(rank),
        SLURM_PROCID=str(rank),
        SLURM_LOCALID="0",
        SLURM_NODELIST="127.0.0.1,127.0.0.1",
        SLURM_JOB_NODELIST="127.0.0.1,127.0.0.1",
        SLURM_STEP_ID="0",
    )
    if restart:
        env["SLURM_RESTART_COUNT"] = str(restart)
    return env


def torchrun_cmd(node_rank: int, nodes: int, port: int, script: list[str]) -> list[str]:
    """One node's ``torchrun`` command (static rendezvous on this machine, one process)."""
    import sys

    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={nodes}",
        "--nproc-per-node=1",
        f"--node-rank={node_rank}",
        "--master-addr=127.0.0.1",
        f"--master-port={port}",
        *script,
    ]


def train_and_dump(argv: list[str]) -> None:
    """``local/train.py``'s command line, plus a callback writing what this rank ends with.

    Usage: ``python tests/dist_helpers.py OUT_DIR <local/train.py options>``: writes
    ``OUT_DIR/rank<global rank>.pt`` with the model's weights, the step count and the
    ``val_loss`` Lightning reports on this rank.
    """
    import functools
    import importlib.util
    import sys

    import pytorch_lightning as pl

    from asteroid_tdanet.recipes import training

    out = Path(argv[0])

    class Dump(pl.Callback):
        def on_fit_end(self, trainer, pl_module):
            state = {k: v.detach().cpu().clone() for k, v in pl_module.model.state_dict().items()}
            torch.save(
                {
                    "state_dict": state,
                    "global_step": trainer.global_step,
                    "val_loss": float(trainer.callback_metrics["val_loss"]),
                    "world_size": trainer.world_size,
                },
                out / f"rank{trainer.global_rank}.pt",
            )

    training.train = functools.partial(training.train, callbacks=[Dump()])
    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("train_cli", repo / "local" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.argv = [str(repo / "local" / "train.py"), *argv[1:]]
    module.main(argv[1:])


if __name__ == "__main__":
    import sys

    train_and_dump(sys.argv[1:])
