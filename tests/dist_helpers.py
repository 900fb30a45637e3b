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
