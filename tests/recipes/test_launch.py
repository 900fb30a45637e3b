"""Which launcher started a training process, read from the variables each one sets."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest
import torch
from dist_helpers import LAUNCH_VARIABLES

from asteroid_tdanet.recipes.launch import (
    LaunchError,
    check_layout,
    cluster_plugins,
    detect_launch,
)
from asteroid_tdanet.recipes.training import launch_nodes, trainer_devices

# Task 5 of `sbatch --nodes 3 --ntasks-per-node 4`: the second task of the second node.
SRUN = {
    "SLURM_JOB_ID": "1234567",
    "SLURM_JOB_NAME": "tdanet",
    "SLURM_NTASKS": "12",
    "SLURM_NTASKS_PER_NODE": "4",
    "SLURM_NNODES": "3",
    "SLURM_NODEID": "1",
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
    "SLURM_NODELIST": "gpu[03-05]",
}
# Worker 5 of `torchrun --nnodes 3 --nproc-per-node 4` on the second node.
TORCHRUN = {
    "TORCHELASTIC_RUN_ID": "job",
    "RANK": "5",
    "LOCAL_RANK": "1",
    "WORLD_SIZE": "12",
    "LOCAL_WORLD_SIZE": "4",
    "GROUP_RANK": "1",
    "MASTER_ADDR": "gpu03",
    "MASTER_PORT": "29500",
}


@contextlib.contextmanager
def launcher_env() -> Iterator[Callable[[dict[str, str]], None]]:
    """No launcher variables inside but those set; the whole environment restored on exit.

    Lightning's SLURMEnvironment writes MASTER_ADDR/MASTER_PORT into os.environ when asked for
    them: monkeypatch would not undo that, and a later DDP test would dial "gpu03".
    """
    saved = dict(os.environ)
    for key in list(os.environ):
        if key in LAUNCH_VARIABLES or key.startswith(("SLURM_", "TORCHELASTIC_")):
            del os.environ[key]
    try:
        yield os.environ.update
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def env():
    with launcher_env() as set_env:
        yield set_env


def test_reading_a_slurm_launch_leaves_no_launcher_variable_behind():
    before = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    with launcher_env() as set_env:
        set_env(SRUN)
        detect_launch()
        assert os.environ["MASTER_ADDR"] == "gpu03"  # Lightning's side effect, undone below
    assert (os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")) == before


def test_srun_tasks(env):
    env(SRUN)
    launch = detect_launch()
    assert (launch.launcher, launch.global_rank, launch.local_rank, launch.node_rank) == (
        "slurm",
        5,
        1,
        1,
    )
    assert (launch.world_size, launch.nodes, launch.devices_per_node) == (12, 3, 4)
    # The first host of the node list, and Lightning's port rule (15000 + last 4 digits).
    assert (launch.main_address, launch.main_port) == ("gpu03", 15000 + 4567)
    assert launch.restart == 0 and launch.external
    assert "global rank 5 of 12 (node 1 of 3, local rank 1), main node gpu03:19567" in (
        launch.describe()
    )
    (plugin,) = cluster_plugins(launch)
    assert plugin.auto_requeue is False  # resume from last.ckpt, not Lightning's hpc_ckpt


def test_a_requeued_job_counts_its_restarts(env):
    env({**SRUN, "SLURM_RESTART_COUNT": "2", "MASTER_ADDR": "10.0.0.3", "MASTER_PORT": "4000"})
    launch = detect_launch()
    assert launch.restart == 2
    assert (launch.main_address, launch.main_port) == ("10.0.0.3", 4000)


def test_srun_without_tasks_per_node_is_lightnings_error(env):
    env({k: v for k, v in SRUN.items() if k != "SLURM_NTASKS_PER_NODE"})
    with pytest.raises(LaunchError, match="--ntasks-per-node"):
        detect_launch()


def test_torchrun_workers(env):
    env(TORCHRUN)
    launch = detect_launch()
    assert (launch.launcher, launch.global_rank, launch.local_rank, launch.node_rank) == (
        "torchrun",
        5,
        1,
        1,
    )
    assert (launch.world_size, launch.nodes, launch.devices_per_node) == (12, 3, 4)
    assert (launch.main_address, launch.main_port) == ("gpu03", 29500)


def test_torchrun_inside_a_slurm_job_is_torchrun(env):
    env({**SRUN, **TORCHRUN})  # as Lightning decides: torchrun may be started by srun
    assert detect_launch().launcher == "torchrun"


@pytest.mark.parametrize("job_name", ["bash", "interactive"])
def test_an_interactive_slurm_shell_is_a_plain_command(env, job_name):
    env({**SRUN, "SLURM_JOB_NAME": job_name})
    assert detect_launch().launcher == "lightning"


def test_plain_commands_and_lightnings_own_children(env):
    launch = detect_launch()
    assert launch.launcher == "lightning" and launch.global_rank == 0 and not launch.external
    env({"LOCAL_RANK": "1"})  # a process Lightning started for the second device
    assert detect_launch().global_rank != 0
    env({"LOCAL_RANK": "0", "NODE_RANK": "1"})  # manual multi-node, second machine
    assert detect_launch().global_rank != 0


def test_devices_follow_the_launcher(env, monkeypatch):
    env(SRUN)
    launch = detect_launch()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert trainer_devices("auto", 1, launch) == {"accelerator": "cpu", "devices": 4}
    assert trainer_devices("cpu", 1, launch) == {"accelerator": "cpu", "devices": 4}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert trainer_devices("auto", 1, launch) == {"accelerator": "gpu", "devices": 4}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # --gpus-per-task binding
    with pytest.raises(RuntimeError, match="--gpus-per-node, not --gpus-per-task"):
        trainer_devices("auto", 1, launch)


def test_options_that_contradict_the_launcher_are_errors(env):
    env(SRUN)
    launch = detect_launch()
    assert launch_nodes(launch, 1) == 3 and launch_nodes(launch, 3) == 3
    with pytest.raises(LaunchError, match="runs on 3 node.* --num_nodes is 2"):
        launch_nodes(launch, 2)
    check_layout(launch, 4, 3)
    with pytest.raises(LaunchError, match="started 4 process.* but 2 device"):
        check_layout(launch, 2, 3)


def test_unreadable_variables_are_named(env):
    env({**SRUN, "SLURM_NODEID": "first"})
    with pytest.raises(LaunchError, match="SLURM_NODEID='first' is not an integer"):
        detect_launch()
