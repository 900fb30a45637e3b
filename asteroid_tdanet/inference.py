"""Separating long recordings with bounded memory: chunked overlap-add inference."""

from __future__ import annotations

from collections.abc import Callable

import torch
from asteroid.dsp.overlap_add import LambdaOverlapAdd
from tqdm.auto import tqdm

# Inputs up to this length are separated whole (global attention sees all of it); longer ones in
# overlapping chunks of DEFAULT_CHUNK_SECONDS, which keeps memory flat for hours of audio.
AUTO_CHUNK_ABOVE_SECONDS = 60.0
DEFAULT_CHUNK_SECONDS = 30.0


def chunk_count(length: int, window: int, hop: int) -> int:
    """Number of chunks ``LambdaOverlapAdd`` cuts a signal of ``length`` samples into."""
    return (length + 2 * window - window) // hop + 1


def separate_in_chunks(
    separator: Callable[[torch.Tensor], torch.Tensor],
    wav: torch.Tensor,
    *,
    n_src: int,
    sample_rate: float,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    progress: bool = False,
) -> torch.Tensor:
    """Separate ``wav`` chunk by chunk and overlap-add the results.

    Chunks overlap by half and are cross-faded with a Hann window (which sums to one at that hop);
    the sources of each chunk are reordered to best match the previous chunk's (separators are
    permutation-invariant). Only one chunk is in the network at a time.

    Args:
        separator: Maps ``(batch, 1, chunk)`` to ``(batch, n_src, chunk)``.
        wav: Mixture, ``(batch, 1, time)``.
        n_src: Number of sources the separator returns.
        sample_rate: Sample rate of ``wav`` in Hz.
        chunk_seconds: Chunk length in seconds.
        progress: Show a progress bar over chunks.

    Returns:
        Estimated sources, ``(batch, n_src, time)``.
    """
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    window = 2 * max(1, round(chunk_seconds * sample_rate / 2))  # LambdaOverlapAdd needs even
    hop = window // 2
    length = wav.shape[-1]
    if length <= window:
        return separator(wav)
    bar = tqdm(
        total=chunk_count(length, window, hop),
        unit="chunk",
        desc="separating",
        disable=not progress,
        leave=False,
    )

    def one_chunk(chunk: torch.Tensor) -> torch.Tensor:
        out = separator(chunk.unsqueeze(1) if chunk.ndim == 2 else chunk)
        bar.update(1)
        return out

    ola = LambdaOverlapAdd(one_chunk, n_src, window, hop, window="hann", reorder_chunks=True)
    ola = ola.to(wav.device)
    with bar:
        return ola.ola_forward(wav)
