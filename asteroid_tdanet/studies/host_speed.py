"""How fast this CPU runs right now: a fixed training step, timed.

The same VM kind is not equally fast from hour to hour (shared hosts), so two CI runs on one host
kind differ by more than the code between them changed. ``make results-ci`` times this step before
and after CI and records both, so a slow CI run can be told from a slow hour. The workload is
built from ``torch.nn`` alone, not from this package, so that changes to the plugin do not move
it: a small convolutional encoder, masker and decoder shaped like the demo's TDANet (batch 2 of
1.5 s at 8 kHz, 64 and 128 channels, a kernel-5 depthwise convolution, group norms, PReLU),
trained with Adam on one thread.

Run: ``python -m asteroid_tdanet.studies.host_speed`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
from torch import nn

WORKLOAD = (
    "torch.nn training step (forward, MSE, backward, Adam), 1 thread: conv encoder 64 ch, "
    "4 blocks of 1x1 conv 64->128, depthwise conv k5, GroupNorm, PReLU, 1x1 conv 128->64, "
    "transposed-conv decoder; batch 2 x 12000 samples"
)


def reference_model(seed: int = 0) -> nn.Module:
    """The fixed network the step trains (``torch.nn`` only)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv1d(1, 64, 64, stride=32, padding=16), nn.PReLU()]
    for _ in range(4):
        layers += [
            nn.Conv1d(64, 128, 1),
            nn.GroupNorm(1, 128),
            nn.PReLU(),
            nn.Conv1d(128, 128, 5, padding=2, groups=128),
            nn.GroupNorm(1, 128),
            nn.PReLU(),
            nn.Conv1d(128, 64, 1),
        ]
    layers.append(nn.ConvTranspose1d(64, 1, 64, stride=32, padding=16))
    return nn.Sequential(*layers)


def reference_step_ms(steps: int = 10, rounds: int = 5, warmup: int = 3) -> dict[str, Any]:
    """Time the reference training step on one thread.

    Args:
        steps: Steps per timed round.
        rounds: Timed rounds; their median is the figure (robust to one slow round).
        warmup: Untimed steps first (allocator and kernel caches).

    Returns:
        ``{"median_ms": ..., "rounds_ms": [...], "steps": ..., "workload": ...}``, where each
        round's value is its mean milliseconds per step.

    Raises:
        ValueError: `steps` or `rounds` is below 1.
    """
    if steps < 1 or rounds < 1:
        raise ValueError(f"steps and rounds must be at least 1, got {steps} and {rounds}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = reference_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        mixture = torch.randn(2, 1, 12000, generator=generator)
        target = torch.randn(2, 1, 12000, generator=generator)

        def step() -> None:
            loss = nn.functional.mse_loss(model(mixture), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        for _ in range(warmup):
            step()
        rounds_ms = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            rounds_ms.append((time.perf_counter() - start) / steps * 1e3)
    finally:
        torch.set_num_threads(threads)
    return {
        "median_ms": round(statistics.median(rounds_ms), 1),
        "rounds_ms": [round(value, 1) for value in rounds_ms],
        "steps": steps,
        "workload": WORKLOAD,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    args = parser.parse_args(argv)
    try:
        result = reference_step_ms(args.steps, args.rounds)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
