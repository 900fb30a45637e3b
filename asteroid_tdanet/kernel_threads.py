"""When the fused CPU kernels split a call between threads: measured on each machine, once.

A call of the fused kernels (:mod:`asteroid_tdanet.native`) is split between OpenMP threads
only where each thread gets at least a *grain* of elements. Where the best grain lies depends on
the machine (its cores, caches and memory), and it cannot be read off one kernel timed alone:
in a model run on several threads, the matrix products around each kernel leave part of its
data in each core's cache, and a kernel kept on one thread pulls the rest over and leaves all of
it on one core for the next product. So the grain is measured on the real thing: the first time
a process runs TDANet's fast path on two or more threads on a machine, it times a U-block (1 s
of 8 kHz audio, random weights) with each candidate grain, interleaved (about a third of a
second in all), and keeps the fastest beside the compiled kernels, per thread count, for later
processes. ``TDANET_KERNEL_GRAIN=<elements>`` sets it instead (an integer >= 1; a large value
keeps every call on one thread).

The grain changes speed only: every kernel computes the same bits on any number of threads.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from statistics import median

__all__ = [
    "CANDIDATES",
    "DEFAULT_GRAIN",
    "choose_grain",
    "forced_grain",
    "grain_file",
    "kept_grain",
    "measure",
    "measure_and_keep",
    "usable_cores",
]

log = logging.getLogger(__name__)

# Where nothing was measured (one core, no OpenMP): calls of at least 2 x 131072 elements
# (half a second of 8 kHz audio at 512 channels) are split between two threads.
DEFAULT_GRAIN = 131072
# The grains tried: down to a few frames of 512 channels per thread.
CANDIDATES = (DEFAULT_GRAIN, 32768, 8192, 2048)
# Another grain is chosen over the default only if the chain takes at most this share of the
# default's time: a smaller gain is within what these measurements vary.
MARGIN = 0.97
ENV = "TDANET_KERNEL_GRAIN"


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose_grain(timings: Mapping[int, float], margin: float = MARGIN) -> int:
    """The grain whose chain was fastest, if it beat :data:`DEFAULT_GRAIN`'s by the margin.

    Args:
        timings: ``{grain: seconds of the chain}``, :data:`DEFAULT_GRAIN` among them.
        margin: The share of the default's time that another grain must take at most.

    Returns:
        The chosen grain.
    """
    if DEFAULT_GRAIN not in timings:
        raise ValueError(f"choose_grain: no timing of the default grain {DEFAULT_GRAIN}")
    best = min(timings, key=timings.__getitem__)
    return best if timings[best] <= margin * timings[DEFAULT_GRAIN] else DEFAULT_GRAIN


def measure(
    run: Callable[[int], float], grains: Sequence[int] = CANDIDATES, rounds: int = 9
) -> dict[int, float]:
    """Median seconds of ``run(grain)`` per grain, the grains interleaved in each round.

    Args:
        run: Runs the chain once with the given grain and returns its seconds.
        grains: The grains to try.
        rounds: Timed runs per grain (after one untimed run of each).

    Returns:
        ``{grain: median seconds}``.
    """
    times: dict[int, list[float]] = {g: [] for g in grains}
    for g in grains:
        run(g)  # warm-up: caches, allocations, OpenMP's threads started
    for _ in range(rounds):
        for g in grains:
            times[g].append(run(g))
    return {g: median(values) for g, values in times.items()}


def forced_grain() -> int | None:
    """The grain that ``TDANET_KERNEL_GRAIN`` sets, if it is set."""
    text = os.environ.get(ENV)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV} must be a whole number of elements >= 1, not {text!r}")
    return value


def grain_file(library_path: Path, threads: int) -> Path:
    """Where the grain measured for the kernels at ``library_path`` on ``threads`` is kept."""
    return library_path.with_name(f"{library_path.stem}-grain-{threads}-threads.json")


def kept_grain(path: Path) -> int | None:
    """The grain kept in ``path``, or ``None`` if there is none (or it is unreadable)."""
    try:
        value = json.loads(path.read_text())["grain"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and value >= 1 else None


def measure_and_keep(path: Path, run: Callable[[int], float]) -> tuple[int, dict[str, object]]:
    """Measure the grain with ``run`` (see :func:`measure`) and keep it in ``path``.

    Returns:
        The grain, and what to report: ``grain_file`` and ``grain_ms`` (the median
        milliseconds per candidate grain).
    """
    timings = measure(run)
    chosen = choose_grain(timings)
    ms = {str(g): round(t * 1e3, 3) for g, t in timings.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"grain": chosen, "ms": ms, "cores": usable_cores()}))
        os.replace(temporary, path)  # atomic: concurrent processes may race here
    except OSError as error:
        log.warning("could not keep the kernels' grain in %s: %s", path, error)
    log.info("fused CPU kernels: calls split from %d elements per thread (ms: %s)", chosen, ms)
    return chosen, {"grain_file": str(path), "grain_ms": ms}
