"""CPU inference timing: batch 1, eval mode, inference mode, warm-up, interleaved repeats.

Models are timed interleaved in one process (round r runs every model once, in an order rotated
by r), so background load and thermal drift hit all of them alike instead of whichever model
happened to run during a busy minute. Report the median and the spread, never a single run.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "TimingStats",
    "all_cores",
    "cpu_rtf",
    "num_threads",
    "parse_threads",
    "summarize",
    "time_interleaved",
]


def all_cores() -> int:
    """Number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_threads(value: str | int) -> int:
    """A thread count from ``"all"`` or a positive integer."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return all_cores()
    count = int(value)
    if count < 1:
        raise ValueError(f"thread count must be >= 1 or 'all', got {value!r}")
    return count


@contextmanager
def num_threads(count: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(count)``, then restore the previous value."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class TimingStats:
    """Summary of repeated timings of one forward pass.

    Attributes:
        n: Number of timed runs.
        median_s: Median time in seconds.
        q1_s: First quartile.
        q3_s: Third quartile.
        min_s: Fastest run.
        max_s: Slowest run.
        rtf: Real-time factor: median time / audio duration (below 1 is faster than real time).
    """

    n: int
    median_s: float
    q1_s: float
    q3_s: float
    min_s: float
    max_s: float
    rtf: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(times: list[float], audio_seconds: float) -> TimingStats:
    """Median, quartiles, extremes and real-time factor of a list of timings (seconds)."""
    if not times:
        raise ValueError("no timings to summarize")
    ordered = sorted(times)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    median = statistics.median(ordered)
    return TimingStats(
        n=len(ordered),
        median_s=median,
        q1_s=q1,
        q3_s=q3,
        min_s=ordered[0],
        max_s=ordered[-1],
        rtf=median / audio_seconds,
    )


def time_interleaved(
    runners: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Time several zero-argument callables, interleaved, under ``torch.inference_mode``.

    Args:
        runners: Name -> callable running one forward pass.
        repeats: Timed runs per callable (round ``r`` runs all of them, order rotated by ``r``).
        warmup: Untimed runs per callable first (allocator, caches, lazy init).
        progress: Called with a short message after each round (for logs or a progress bar).

    Returns:
        Name -> list of wall-clock times in seconds, one per round.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for name in names:
            for _ in range(warmup):
                runners[name]()
        for r in range(repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                runners[name]()
                times[name].append(time.perf_counter() - start)
            if progress is not None:
                progress(f"round {r + 1}/{repeats}")
    return times


def cpu_rtf(
    model: nn.Module,
    sample_rate: int,
    seconds: float = 1.0,
    repeats: int = 5,
    warmup: int = 1,
) -> float:
    """Real-time factor of a model on CPU: median forward time / audio duration.

    Batch 1, eval mode, inference mode, the current ``torch.get_num_threads()``. The model must
    be on CPU; its train/eval mode is restored afterwards.

    Args:
        model: A waveform model (batch, time) -> (batch, n_src, time).
        sample_rate: Sample rate in Hz.
        seconds: Input duration.
        repeats: Timed runs (median taken).
        warmup: Untimed runs first.

    Returns:
        The real-time factor (below 1 is faster than real time).
    """
    num_samples = int(round(seconds * sample_rate))
    if num_samples < 1:
        raise ValueError(f"{seconds} s at {sample_rate} Hz is no samples")
    was_training = model.training
    model.eval()
    try:
        param = next(iter(model.parameters()), None)
        dtype = param.dtype if param is not None else torch.float32
        wav = torch.randn(1, num_samples, generator=torch.Generator().manual_seed(0)).to(dtype)
        if param is not None and param.device.type != "cpu":
            raise ValueError(f"cpu_rtf needs a model on CPU, got one on {param.device}")
        times = time_interleaved({"model": lambda: model(wav)}, repeats=repeats, warmup=warmup)
    finally:
        model.train(was_training)
    return summarize(times["model"], seconds).rtf
