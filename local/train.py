#!/usr/bin/env python
"""Stage 2: train the model of a conf; writes exp/<tag>/ (see asteroid_tdanet.recipes.training).

Usage:
    python local/train.py --conf conf/tdanet.yml --data_dir data/wav8k --exp_dir exp/tdanet \
        [--gpus auto|0,1|cpu] [--cpu_procs N] [--num_nodes K] [--resume yes] [--overwrite yes] \
        [--precision 32-true|bf16-mixed|16-mixed] \
        [--section.key VALUE ...]     # conf overrides, e.g. --optim.lr 5e-4 --training.epochs 1

Under srun or torchrun every process runs this same command: ranks, world size and the main
node come from the launcher's variables (asteroid_tdanet/recipes/launch.py), and global rank 0
alone prepares and writes exp_dir. A restarted job (SLURM requeue, torchrun --max-restarts)
resumes from exp_dir/checkpoints/last.ckpt by itself.
"""

from __future__ import annotations

import argparse

from asteroid_tdanet.recipes.cli import fail, setup_logging, yes_no


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], usage=__doc__)
    parser.add_argument("--conf", required=True, help="YAML conf (see recipes/config.py)")
    parser.add_argument("--data_dir", required=True, help="stage-1 metadata directory")
    parser.add_argument("--exp_dir", required=True, help="experiment directory exp/<tag>")
    parser.add_argument(
        "--gpus",
        default="auto",
        help="auto (default: every visible GPU, else the CPU), GPU ids such as 0,1, or cpu / ''",
    )
    parser.add_argument("--cpu_procs", type=int, default=1, help="CPU processes (>1: DDP/gloo)")
    parser.add_argument("--num_nodes", type=int, default=1, help="machines (multi-node DDP)")
    parser.add_argument("--resume", default="no", help="yes: continue from last.ckpt")
    parser.add_argument("--overwrite", default="no", help="yes: delete an existing exp_dir")
    parser.add_argument(
        "--precision",
        default=None,
        choices=("32-true", "bf16-mixed", "16-mixed"),
        help="Lightning precision (default: the conf's training.precision)",
    )
    parser.add_argument("--progress_bar", default="yes")
    args, overrides = parser.parse_known_args(argv)
    setup_logging()

    from asteroid_tdanet.recipes.config import ConfigError, load_conf
    from asteroid_tdanet.recipes.launch import LaunchError
    from asteroid_tdanet.recipes.training import (
        ExperimentExistsError,
        NonFiniteLossError,
        train,
    )

    try:
        if args.precision is not None:
            overrides = [*overrides, "--training.precision", args.precision]
        conf = load_conf(args.conf, overrides)
        best = train(
            conf,
            args.data_dir,
            args.exp_dir,
            gpus=args.gpus,
            cpu_procs=args.cpu_procs,
            num_nodes=args.num_nodes,
            resume=yes_no(args.resume),
            overwrite=yes_no(args.overwrite),
            progress_bar=yes_no(args.progress_bar),
        )
    except (
        ConfigError,
        ExperimentExistsError,
        NonFiniteLossError,
        FileNotFoundError,
        LaunchError,
    ) as err:
        fail(err)
    if best is not None:
        print(f"best model: {best}")


if __name__ == "__main__":
    main()
