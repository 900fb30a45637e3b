"""Measure whole recipe runs (wall clock and test scores) into a result file.

Each run executes a recipe's ``run.sh`` from fresh folders (data built, prepared, trained,
evaluated, published and compared, as a user's first run), timing it end to end, and records
the test metrics, the training steps and epochs, the best validation loss and the machine's load
before and after. Variants differ only by conf overrides (``--train_opts``), so they share the
conf's training budget: ``training.max_steps`` (the same steps, each variant's wall time
measured) or ``training.max_minutes`` (the same wall time).

Run (what ``make results-demo`` and ``make results-demo-augmentation`` do)::

    python -m asteroid_tdanet.recipes.measure --recipe egs/mini2mix/TDANet \\
        --variant default "" --variant default "" --out results/demo.json --command "make ..."
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

STAGE_DONE = re.compile(r"stage (\d) done \((\d+) s\)")


def stage_seconds(log: str) -> dict[str, int]:
    """Seconds of each stage, from the driver's ``stage N done (T s)`` lines (T: since start).

    Args:
        log: The recipe's output (``local/recipe.sh`` logs a cumulative time per stage).

    Returns:
        Stage number (as text) -> seconds that stage took, for the stages that ran.
    """
    done = [(stage, int(total)) for stage, total in STAGE_DONE.findall(log)]
    out, previous = {}, 0
    for stage, total in done:
        out[stage] = total - previous
        previous = total
    return out


def run_once(recipe: Path, train_opts: str, workdir: Path) -> dict[str, Any]:
    """Run ``recipe/run.sh`` into `workdir` and return what it measured.

    Raises:
        RuntimeError: the recipe failed (its last output lines are in the message).
    """
    exp_root = workdir / "exp"
    command = [
        "bash",
        str(recipe / "run.sh"),
        "--storage_dir",
        str(workdir / "raw"),
        "--data_dir",
        str(workdir / "data"),
        "--exp_root",
        str(exp_root),
    ]
    if train_opts:
        command += ["--train_opts", train_opts]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    minutes = (time.monotonic() - start) / 60
    load_after = os.getloadavg()[0]
    (workdir / "run.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{(out.stdout + out.stderr)[-3000:]}")
    exp = exp_root / "tdanet"
    metrics = json.loads((exp / "results" / "final_metrics.json").read_text())
    last = torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    history = last.get("history", [])
    conf = yaml.safe_load((exp / "conf.yml").read_text())
    stages = stage_seconds(out.stdout + out.stderr)
    steps = int(last["global_step"])
    return {
        "minutes": round(minutes, 2),
        "test": {k: round(v["mean"], 3) for k, v in metrics.items() if v["mean"] is not None},
        "test_mixtures": next(iter(metrics.values()))["count"],
        "best_valid_si_sdr": round(-min(r["val_loss"] for r in history), 3) if history else None,
        "epochs": len(history),
        "steps": steps,
        "stage_seconds": stages,
        # Training (stage 2, validation included) per optimizer step.
        "train_seconds_per_step": round(stages["2"] / steps, 4)
        if "2" in stages and steps
        else None,
        "train_opts": train_opts,
        "data": {k: conf["data"][k] for k in ("dynamic_mixing", "speed_perturb", "segment")},
        "max_minutes": conf["training"]["max_minutes"],
        "max_steps": conf["training"]["max_steps"],
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
        # Training threads: torch's default (every core) unless OMP_NUM_THREADS limits it.
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, required=True, help="e.g. egs/mini2mix/TDANet")
    parser.add_argument(
        "--variant",
        nargs=2,
        action="append",
        metavar=("NAME", "TRAIN_OPTS"),
        required=True,
        help="a run: its name and its conf overrides ('' for the recipe as it is); repeat a "
        "name to measure it again",
    )
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument("--command", required=True, help="command recorded in the result")
    args = parser.parse_args(argv)
    from asteroid_tdanet.provenance import provenance, write_result

    header = provenance(args.command)  # the commit and machine the runs start from
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, train_opts in args.variant:
        with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
            result = run_once(args.recipe.resolve(), train_opts, Path(tmp))
        runs.setdefault(name, []).append(result)
        print(f"{name}: {json.dumps(result)}", flush=True)
    values: dict[str, Any] = {"recipe": str(args.recipe), "runs": runs}
    write_result(args.out, values, header)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
