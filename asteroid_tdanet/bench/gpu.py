"""Accelerator timing: inference latency, training step time, and peak memory.

Runs on CUDA when asked; the same functions run on CPU (without memory figures) so that they are
testable on machines without a GPU. Timings synchronise the device around each run.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from .timing import summarize

__all__ = ["DTYPES", "inference_latency", "train_step_time"]

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: str):
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    if DTYPES[dtype] is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


@contextmanager
def _peak_memory(device: torch.device) -> Iterator[dict[str, Any]]:
    """Yields a dict that holds ``peak_bytes`` (None off CUDA) after the block."""
    record: dict[str, Any] = {"peak_bytes": None}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield record
    if device.type == "cuda":
        record["peak_bytes"] = int(torch.cuda.max_memory_allocated(device))


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def inference_latency(
    model: nn.Module,
    sample_rate: int,
    seconds: float,
    device: str | torch.device = "cuda",
    dtype: str = "fp32",
    repeats: int = 10,
    warmup: int = 2,
) -> dict[str, Any]:
    """Latency and peak memory of separating ``seconds`` of audio at batch 1.

    The model is copied to ``device`` (the caller's model is left untouched).

    Args:
        model: A waveform model (batch, time) -> (batch, n_src, time).
        sample_rate: Sample rate in Hz.
        seconds: Input duration.
        device: Where to run (``"cuda"``; ``"cpu"`` works for testing, without memory figures).
        dtype: ``"fp32"`` or ``"bf16"`` (autocast).
        repeats: Timed runs.
        warmup: Untimed runs first.

    Returns:
        ``TimingStats`` fields plus ``peak_bytes`` (None off CUDA), ``seconds``, ``dtype``.
    """
    device = torch.device(device)
    net = copy.deepcopy(model).to(device).eval()
    wav = torch.randn(1, int(round(seconds * sample_rate)), device=device)
    with _peak_memory(device) as mem, torch.inference_mode(), _autocast(device, dtype):
        times = _timed(lambda: net(wav), device, repeats, warmup)
    stats = summarize(times, seconds).as_dict()
    return {**stats, "peak_bytes": mem["peak_bytes"], "seconds": seconds, "dtype": dtype}


def train_step_time(
    model: nn.Module,
    sample_rate: int,
    batch_size: int = 4,
    seconds: float = 3.0,
    device: str | torch.device = "cuda",
    dtype: str = "fp32",
    repeats: int = 10,
    warmup: int = 2,
) -> dict[str, Any]:
    """Time of one training step (forward, PIT SI-SDR loss, backward, Adam) and its peak memory.

    The model is copied to ``device`` (the caller's model is left untouched).

    Args:
        model: A waveform model (batch, time) -> (batch, n_src, time).
        sample_rate: Sample rate in Hz.
        batch_size: Items per step.
        seconds: Duration of each item.
        device: Where to run (``"cuda"``; ``"cpu"`` works for testing, without memory figures).
        dtype: ``"fp32"`` or ``"bf16"`` (autocast of the forward pass and loss).
        repeats: Timed steps.
        warmup: Untimed steps first.

    Returns:
        ``TimingStats`` fields (``rtf`` is per second of one item), ``peak_bytes``,
        ``batch_size``, ``seconds``, ``dtype``.
    """
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    device = torch.device(device)
    net = copy.deepcopy(model).to(device).train()
    loss_fn = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    length = int(round(seconds * sample_rate))
    gen = torch.Generator().manual_seed(0)
    n_src = int(getattr(model, "n_src", None) or getattr(model, "num_sources", 2))
    sources = torch.randn(batch_size, n_src, length, generator=gen).to(device)
    mix = sources.sum(1)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, dtype):
            est = net(mix)
            loss = loss_fn(est.float(), sources)
        loss.backward()
        optimizer.step()

    with _peak_memory(device) as mem:
        times = _timed(step, device, repeats, warmup)
    stats = summarize(times, seconds).as_dict()
    return {
        **stats,
        "peak_bytes": mem["peak_bytes"],
        "batch_size": batch_size,
        "seconds": seconds,
        "dtype": dtype,
    }
