"""Who launched this training process, and what its place in the job is.

Training runs as one process per device. Those processes are started either by Lightning itself
(one command on one machine: it re-runs the script for every extra device), by SLURM's ``srun``
(one task per device on every node) or by ``torchrun`` (one agent per node starting one worker
per device). :func:`detect_launch` reads the variables each launcher sets, through Lightning's
own cluster environments (``SLURMEnvironment``, ``TorchElasticEnvironment``, checked in
Lightning's order), so this module and the Trainer always agree on ranks, world size and the
main node's address:

==========  ===============================  =================================================
launcher    rank / local rank / world size   main address and port
==========  ===============================  =================================================
srun        SLURM_PROCID / SLURM_LOCALID /   first host of SLURM_NODELIST (``node[03-05]`` ->
            SLURM_NTASKS                     ``node03``); port 15000 + last 4 digits of
                                             SLURM_JOB_ID (MASTER_ADDR/MASTER_PORT override)
torchrun    RANK / LOCAL_RANK / WORLD_SIZE   MASTER_ADDR / MASTER_PORT
Lightning   NODE_RANK x devices + LOCAL_RANK MASTER_ADDR / MASTER_PORT (manual multi-node)
==========  ===============================  =================================================

The process of global rank 0 alone prepares ``exp/<tag>`` (see ``training.train``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """The place of this process in a training job.

    Attributes:
        launcher: ``slurm``, ``torchrun`` or ``lightning`` (a plain command; Lightning starts
            the processes of extra devices itself).
        global_rank: Rank among all processes of the job (0: the one that writes ``exp/``).
        local_rank: Rank among the processes of this node.
        node_rank: Rank of this node.
        world_size: Processes in the job (None for ``lightning``: known once the devices are).
        nodes: Nodes in the job (None for ``lightning``: ``--num_nodes``).
        devices_per_node: Processes per node (None for ``lightning``: the devices asked).
        main_address: Host of global rank 0 (None for ``lightning`` on one node).
        main_port: Its rendezvous port (None for ``lightning`` on one node).
        restart: How many times the scheduler restarted this job (SLURM_RESTART_COUNT after a
            requeue, TORCHELASTIC_RESTART_COUNT after torchrun restarted failed workers).
    """

    launcher: str
    global_rank: int
    local_rank: int
    node_rank: int
    world_size: int | None
    nodes: int | None
    devices_per_node: int | None
    main_address: str | None
    main_port: int | None
    restart: int

    @property
    def external(self) -> bool:
        """Whether every process was started by the launcher (all run this code at once)."""
        return self.launcher != "lightning"

    def describe(self) -> str:
        """One log line naming the launcher and this process's place."""
        if not self.external:
            return "launched as a plain command (Lightning starts one process per device)"
        return (
            f"launched by {self.launcher}: global rank {self.global_rank} of {self.world_size} "
            f"(node {self.node_rank} of {self.nodes}, local rank {self.local_rank}), main node "
            f"{self.main_address}:{self.main_port}"
            + (f", restart {self.restart}" if self.restart else "")
        )


class LaunchError(RuntimeError):
    """The launcher's variables contradict each other or the options given."""


def _int(name: str, default: int | None = None) -> int:
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise LaunchError(f"{name} is not set")
        return default
    try:
        return int(text)
    except ValueError:
        raise LaunchError(f"{name}={text!r} is not an integer") from None


def _slurm_tasks_per_node() -> int:
    # Lightning runs one task per device and insists on --ntasks-per-node (SLURMEnvironment
    # refuses a bare --ntasks > 1); srun may write it "4(x2)".
    text = os.environ.get("SLURM_NTASKS_PER_NODE", "1")
    try:
        return int(text.split("(")[0])
    except ValueError:
        raise LaunchError(f"SLURM_NTASKS_PER_NODE={text!r} is not an integer") from None


def detect_launch() -> Launch:
    """The launcher of this process and its place in the job (see the module doc).

    Raises:
        LaunchError: Missing or contradictory launcher variables.
    """
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():  # first, as Lightning does: torchrun may run in SLURM
        world = _int("WORLD_SIZE")
        per_node = _int("LOCAL_WORLD_SIZE", world)
        env = TorchElasticEnvironment()
        return Launch(
            launcher="torchrun",
            global_rank=env.global_rank(),
            local_rank=env.local_rank(),
            node_rank=_int("GROUP_RANK", 0),
            world_size=world,
            nodes=max(1, world // per_node),
            devices_per_node=per_node,
            main_address=env.main_address,
            main_port=env.main_port,
            restart=_int("TORCHELASTIC_RESTART_COUNT", 0),
        )
    if SLURMEnvironment.detect():
        ntasks = _int("SLURM_NTASKS")
        nodes = _int("SLURM_NNODES", _int("SLURM_JOB_NUM_NODES", 1))
        try:
            env = SLURMEnvironment(auto_requeue=False)
        except RuntimeError as err:  # Lightning's check of the srun variables
            raise LaunchError(str(err)) from None
        return Launch(
            launcher="slurm",
            global_rank=env.global_rank(),
            local_rank=_int("SLURM_LOCALID"),
            node_rank=_int("SLURM_NODEID", 0),
            world_size=ntasks,
            nodes=nodes,
            devices_per_node=_slurm_tasks_per_node(),
            main_address=env.main_address,
            main_port=env.main_port,
            restart=_int("SLURM_RESTART_COUNT", 0),
        )
    local_rank = _int("LOCAL_RANK", 0)
    node_rank = _int("NODE_RANK", _int("GROUP_RANK", 0))
    return Launch(
        launcher="lightning",
        # Without the device count this is only "0 or not"; which is all the caller needs.
        global_rank=0 if (local_rank == 0 and node_rank == 0) else -1,
        local_rank=local_rank,
        node_rank=node_rank,
        world_size=None,
        nodes=None,
        devices_per_node=None,
        main_address=os.environ.get("MASTER_ADDR"),
        main_port=int(os.environ["MASTER_PORT"]) if "MASTER_PORT" in os.environ else None,
        restart=0,
    )


def cluster_plugins(launch: Launch) -> list:
    """Lightning plugins for this launch: SLURM's environment without its auto-requeue.

    Lightning's own requeue handler would save a mid-epoch ``hpc_ckpt_N.ckpt`` on SIGUSR1 and
    resume from it; the recipes resume from ``checkpoints/last.ckpt`` (end of an epoch) instead,
    so that a requeued job continues exactly like ``--resume yes`` (see local/slurm/).
    """
    if launch.launcher != "slurm":
        return []
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)]


def check_layout(launch: Launch, devices_per_node: int, num_nodes: int) -> None:
    """Check that the devices asked match the processes the launcher started.

    Raises:
        LaunchError: A mismatch, with the option to change.
    """
    if not launch.external:
        return
    if launch.devices_per_node != devices_per_node:
        raise LaunchError(
            f"{launch.launcher} started {launch.devices_per_node} process(es) per node but "
            f"{devices_per_node} device(s) per node were asked: start one process per GPU "
            "(sbatch --ntasks-per-node=G --gpus-per-node=G; torchrun --nproc-per-node G) and "
            "leave --gpus at auto"
        )
    if launch.nodes != num_nodes:
        raise LaunchError(
            f"{launch.launcher} runs on {launch.nodes} node(s) but --num_nodes is {num_nodes}: "
            "leave --num_nodes at 1 (the launcher's node count is used)"
        )
