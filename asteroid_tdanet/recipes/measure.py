"""Measure whole recipe runs (wall clock and test scores) into a result file.

Each run executes a recipe's ``run.sh`` from fresh folders (data built, prepared, trained,
evaluated, published and compared, as a user's first run), timing it end to end, and records
the test metrics, the training steps and epochs, the best validation loss and the machine's load
before and after. Variants differ only by conf overrides (``--train_opts``), so they share one
wall-clock training budget (``training.max_minutes``).

Run (what ``make results-demo`` and ``make results-demo-augmentation`` do)::

    python -m asteroid_tdanet.recipes.measure --recipe egs/mini2mix/TDANet \\
        --variant default "" --variant default "" --out results/demo.json --command "make ..."
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml


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
    return {
        "minutes": round(minutes, 2),
        "test": {k: round(v["mean"], 3) for k, v in metrics.items() if v["mean"] is not None},
        "test_mixtures": next(iter(metrics.values()))["count"],
        "best_valid_si_sdr": round(-min(r["val_loss"] for r in history), 3) if history else None,
        "epochs": len(history),
        "steps": int(last["global_step"]),
        "train_opts": train_opts,
        "data": {k: conf["data"][k] for k in ("dynamic_mixing", "speed_perturb", "segment")},
        "max_minutes": conf["training"]["max_minutes"],
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
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
    from asteroid_tdanet.provenance import write_result

    runs: dict[str, list[dict[str, Any]]] = {}
    for name, train_opts in args.variant:
        with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
            result = run_once(args.recipe.resolve(), train_opts, Path(tmp))
        runs.setdefault(name, []).append(result)
        print(f"{name}: {json.dumps(result)}", flush=True)
    values: dict[str, Any] = {"recipe": str(args.recipe), "runs": runs}
    write_result(args.out, values, args.command)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
