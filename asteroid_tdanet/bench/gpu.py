"""Accelerator timing: inference latency, training step time, and peak memory.

Runs on CUDA when asked; the same functions run on CPU (without memory figures) so that they are
testable on machines without a GPU. Timings synchronise the device around each run; the peak
memory is that of the timed runs (warm-up and any compilation in it are left out).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from .timing import summarize

__all__ = ["DTYPES", "inference_latency", "train_step_time"]

# "bf16" is mixed precision: autocast of the forward pass, weights and optimizer in float32.
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


def _timed(
    fn: Callable[[], Any],
    device: torch.device,
    repeats: int,
    warmup: int,
    max_seconds: float | None = None,
) -> tuple[list[float], int | None]:
    """Times of up to ``repeats`` runs of ``fn`` after ``warmup`` untimed ones, and peak memory.

    The peak (CUDA only, else None) covers the timed runs only. ``max_seconds`` ends the timed
    runs once they have taken that long (one run is always timed).
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        if max_seconds is not None and sum(times) >= max_seconds:
            break
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return times, peak


def _on_device(
    model: nn.Module, device: torch.device, prepare: Callable[[nn.Module], Any] | None
) -> nn.Module:
    """A copy of ``model`` on ``device`` (the caller's stays as it is), then ``prepare``d."""
    net = copy.deepcopy(model).to(device)
    if prepare is not None:
        prepare(net)
    return net


def inference_latency(
    model: nn.Module,
    sample_rate: int,
    seconds: float,
    device: str | torch.device = "cuda",
    dtype: str = "fp32",
    repeats: int = 10,
    warmup: int = 2,
    *,
    prepare: Callable[[nn.Module], Any] | None = None,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Latency and peak memory of separating ``seconds`` of audio at batch 1.

    Args:
        model: A waveform model (batch, time) -> (batch, n_src, time); copied, not changed.
        sample_rate: Sample rate in Hz.
        seconds: Input duration.
        device: Where to run (``"cuda"``; ``"cpu"`` works for testing, without memory figures).
        dtype: ``"fp32"`` or ``"bf16"`` (autocast).
        repeats: Timed runs (at most).
        warmup: Untimed runs first.
        prepare: Called once on the copy on ``device`` (e.g. to compile it).
        max_seconds: End the timed runs once they have taken this long.

    Returns:
        ``TimingStats`` fields plus ``peak_bytes`` (None off CUDA), ``seconds``, ``dtype``.
    """
    device = torch.device(device)
    autocast = _autocast(device, dtype)  # refuses an unknown dtype before any work
    net = _on_device(model, device, prepare).eval()
    wav = torch.randn(1, int(round(seconds * sample_rate)), device=device)
    with torch.inference_mode(), autocast:
        times, peak = _timed(lambda: net(wav), device, repeats, warmup, max_seconds)
    stats = summarize(times, seconds).as_dict()
    return {**stats, "peak_bytes": peak, "seconds": seconds, "dtype": dtype}


def train_step_time(
    model: nn.Module,
    sample_rate: int,
    batch_size: int = 4,
    seconds: float = 3.0,
    device: str | torch.device = "cuda",
    dtype: str = "fp32",
    repeats: int = 10,
    warmup: int = 2,
    *,
    prepare: Callable[[nn.Module], Any] | None = None,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Time of one training step (forward, PIT SI-SDR loss, backward, Adam) and its peak memory.

    Args:
        model: A waveform model (batch, time) -> (batch, n_src, time); copied, not changed.
        sample_rate: Sample rate in Hz.
        batch_size: Items per step.
        seconds: Duration of each item.
        device: Where to run (``"cuda"``; ``"cpu"`` works for testing, without memory figures).
        dtype: ``"fp32"`` or ``"bf16"`` (autocast of the forward pass; the loss is computed in
            float32 outside autocast, as the recipes do).
        repeats: Timed steps (at most).
        warmup: Untimed steps first.
        prepare: Called once on the copy on ``device`` (e.g. ``masker.compile_block()``).
        max_seconds: End the timed steps once they have taken this long.

    Returns:
        ``TimingStats`` fields (``rtf`` is per second of one item), ``peak_bytes``,
        ``batch_size``, ``seconds``, ``dtype``.
    """
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    device = torch.device(device)
    _autocast(device, dtype)  # refuses an unknown dtype before any work
    net = _on_device(model, device, prepare).train()
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

    times, peak = _timed(step, device, repeats, warmup, max_seconds)
    stats = summarize(times, seconds).as_dict()
    return {
        **stats,
        "peak_bytes": peak,
        "batch_size": batch_size,
        "seconds": seconds,
        "dtype": dtype,
    }
