"""Separating recordings of any length in bounded memory: chunk-at-a-time overlap-add.

A long mixture is cut into chunks of ``window`` samples that overlap by ``overlap`` samples
(``hop = window - overlap``), and each chunk is separated on its own. Over each overlap the
outgoing chunk fades out with a ``cos^2`` ramp and the incoming one fades in with ``sin^2`` (the
two halves of a Hann window), which sum to one: a separator that acts sample by sample is
reproduced exactly, and the seams of a real one are smoothed. Separators are
permutation-invariant, so before the cross-fade the sources of each chunk are reordered to match
the previous chunk's estimates over the overlap (least squares).

Everything is a stream: :func:`stream_separate` takes the mixture as blocks of any size and
yields output samples as soon as no later chunk can change them. It holds one chunk of input and
one overlap of estimates, whatever the length of the recording. :func:`separate_in_chunks` writes
the stream into one preallocated output tensor; ``tdanet-separate`` writes it into files
(:mod:`asteroid_tdanet.cli`), so an hour of audio never sits in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

# Inputs up to this length are separated whole (global attention sees all of it); longer ones in
# chunks of DEFAULT_CHUNK_SECONDS overlapping by DEFAULT_OVERLAP_SECONDS. Chosen by measurement
# (results/chunking.json, `make results-chunking`; results/long-audio.json): tdanet-separate's
# peak memory with the full-size TDANet at 8 kHz is about 0.7 GiB of imported torch and asteroid
# plus the activations of one chunk, which must stay within 1 GB; the work grows with the overlap
# (x1.14 at 0.5 s); the quality cost of both is measured there.
AUTO_CHUNK_ABOVE_SECONDS = 60.0
DEFAULT_CHUNK_SECONDS = 4.0
DEFAULT_OVERLAP_SECONDS = 0.5

Separator = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ChunkPlan:
    """Where the chunks of a long signal start and how they overlap, in samples.

    Chunk ``k`` covers ``[k * hop, k * hop + window)``; the last chunk ends at the signal's end
    and is shorter. A signal of at most ``window`` samples is one chunk.

    Attributes:
        window: Chunk length.
        overlap: Samples shared by consecutive chunks (cross-faded); at most ``window // 2``.
    """

    window: int
    overlap: int

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"chunks need at least 2 samples, got window={self.window}")
        if not 1 <= self.overlap <= self.window // 2:
            raise ValueError(
                f"the overlap must be between 1 sample and half a chunk ({self.window // 2} "
                f"samples), got {self.overlap}: chunks are aligned and cross-faded on it"
            )

    @property
    def hop(self) -> int:
        """Distance between the starts of consecutive chunks."""
        return self.window - self.overlap

    @classmethod
    def from_seconds(
        cls, chunk_seconds: float, overlap_seconds: float, sample_rate: float
    ) -> ChunkPlan:
        """A plan from durations (rounded to whole samples).

        Raises:
            ValueError: non-positive durations, or an overlap longer than half a chunk.
        """
        if not chunk_seconds > 0 or not overlap_seconds > 0:
            raise ValueError(
                f"chunk_seconds and overlap_seconds must be positive, got {chunk_seconds} and "
                f"{overlap_seconds}"
            )
        if overlap_seconds > chunk_seconds / 2:
            raise ValueError(
                f"overlap_seconds={overlap_seconds} is more than half of "
                f"chunk_seconds={chunk_seconds}"
            )
        window = max(2, round(chunk_seconds * sample_rate))
        overlap = min(max(1, round(overlap_seconds * sample_rate)), window // 2)
        return cls(window, overlap)

    def n_chunks(self, length: int) -> int:
        """How many chunks a signal of ``length`` samples is separated in."""
        if length <= self.window:
            return 1
        return math.ceil((length - self.overlap) / self.hop)


def resolve_chunking(
    length: int,
    sample_rate: float,
    chunk_seconds: float | None = None,
    overlap_seconds: float | None = None,
) -> tuple[float, float] | None:
    """The chunking of ``forward_wav`` and ``tdanet-separate``: ``None`` means separate whole.

    Args:
        length: Input samples.
        sample_rate: Hz.
        chunk_seconds: ``None``: inputs longer than ``AUTO_CHUNK_ABOVE_SECONDS`` are chunked into
            ``DEFAULT_CHUNK_SECONDS``, shorter ones separated whole; ``0``: never chunk.
        overlap_seconds: ``None``: ``DEFAULT_OVERLAP_SECONDS``, or half a chunk if that is less.

    Returns:
        ``(chunk_seconds, overlap_seconds)``, or ``None``.
    """
    if chunk_seconds is None:
        long = length > AUTO_CHUNK_ABOVE_SECONDS * sample_rate
        chunk_seconds = DEFAULT_CHUNK_SECONDS if long else 0
    if chunk_seconds < 0:
        raise ValueError(f"chunk_seconds must be >= 0 (0: never chunk), got {chunk_seconds}")
    if chunk_seconds == 0:
        return None
    if overlap_seconds is None:
        overlap_seconds = min(DEFAULT_OVERLAP_SECONDS, chunk_seconds / 2)
    return chunk_seconds, overlap_seconds


def fade_in(overlap: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The incoming chunk's ramp over an overlap, ``sin^2``; the outgoing one is ``1 - fade_in``.

    Samples sit at the middle of their intervals, so the ramp is symmetric:
    ``fade_in[t] + fade_in[overlap - 1 - t] == 1``.
    """
    t = (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap
    return torch.sin(0.5 * math.pi * t).square().to(dtype=dtype, device=device)


def align_sources(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """The order of ``current``'s sources that best matches ``previous`` (least squares).

    Args:
        previous: Estimates of the previous chunk over the overlap, ``(batch, n_src, overlap)``.
        current: Estimates of the new chunk over the same samples, ``(batch, n_src, overlap)``.

    Returns:
        ``(batch, n_src)`` indices: source ``i`` of the aligned chunk is ``current[:, perm[:, i]]``.
    """
    # Minimising sum_i ||prev_i - cur_perm(i)||^2 = maximising sum_i <prev_i, cur_perm(i)>.
    scores = torch.einsum("bit,bjt->bij", previous.double(), current.double()).cpu().numpy()
    perms = [linear_sum_assignment(s, maximize=True)[1] for s in scores]
    return torch.as_tensor(np.stack(perms), dtype=torch.long, device=current.device)


def _separate_chunk(separator: Separator, chunk: torch.Tensor, n_src: int) -> torch.Tensor:
    est = separator(chunk.unsqueeze(1))
    expected = (chunk.shape[0], n_src, chunk.shape[-1])
    if tuple(est.shape) != expected:
        raise ValueError(
            f"the separator returned shape {tuple(est.shape)} for a chunk of shape "
            f"{tuple(chunk.shape)}; expected {expected} (batch, n_src, time)"
        )
    return est


def stream_separate(
    separator: Separator,
    blocks: Iterable[torch.Tensor],
    *,
    n_src: int,
    plan: ChunkPlan,
    bar: tqdm | None = None,
) -> Iterator[torch.Tensor]:
    """Separate a mixture that arrives in blocks, chunk by chunk, yielding finished output.

    Args:
        separator: Maps ``(batch, 1, time)`` to ``(batch, n_src, time)`` for any chunk length.
        blocks: The mixture as consecutive ``(batch, time)`` blocks of any sizes.
        n_src: Number of sources the separator returns.
        plan: Chunk length and overlap.
        bar: Advanced by one per separated chunk.

    Yields:
        ``(batch, n_src, n)`` pieces of the estimates, in order; together as long as the input.
        A signal no longer than one chunk is separated whole.
    """
    window, overlap, hop = plan.window, plan.overlap, plan.hop
    ramp_in: torch.Tensor | None = None
    pending: list[torch.Tensor] = []  # input not yet consumed: starts at the next chunk's start
    pending_len = 0
    tail: torch.Tensor | None = None  # previous chunk's aligned estimates over the next overlap

    def consume(chunk: torch.Tensor, last: bool) -> Iterator[torch.Tensor]:
        nonlocal tail, ramp_in
        est = _separate_chunk(separator, chunk, n_src)
        if bar is not None:
            bar.update(1)
        start = 0
        if tail is not None:
            head = est[..., :overlap]
            perm = align_sources(tail, head)
            est = est.gather(1, perm[..., None].expand_as(est))
            if ramp_in is None:
                ramp_in = fade_in(overlap, est.dtype, est.device)
            yield tail + (est[..., :overlap] - tail) * ramp_in  # = tail*(1-r) + est*r
            start = overlap
        if last:
            tail = None
            yield est[..., start:]
        else:
            tail = est[..., window - overlap :].clone()
            yield est[..., start : window - overlap]

    for block in blocks:
        if block.ndim != 2:
            raise ValueError(f"blocks must be (batch, time), got shape {tuple(block.shape)}")
        if block.shape[-1] == 0:
            continue
        pending.append(block)
        pending_len += block.shape[-1]
        if pending_len < window:
            continue
        buffer = torch.cat(pending, dim=-1) if len(pending) > 1 else pending[0]
        while buffer.shape[-1] >= window:
            yield from consume(buffer[..., :window], last=False)
            buffer = buffer[..., hop:]
        # A copy, so that the big concatenation (or the caller's block) can be freed.
        pending, pending_len = [buffer.clone()], buffer.shape[-1]

    rest = torch.cat(pending, dim=-1) if pending else None
    if tail is None:
        if rest is not None:  # shorter than one chunk: separated whole
            yield from consume(rest, last=True)
    elif rest.shape[-1] > overlap:
        yield from consume(rest, last=True)
    else:  # the input ended exactly at the end of the last chunk
        yield tail


def chunk_bar(total: int | None, progress: bool) -> tqdm:
    """The progress bar over chunks (disabled when ``progress`` is false)."""
    return tqdm(total=total, unit="chunk", desc="separating", disable=not progress, leave=False)


def separate_in_chunks(
    separator: Separator,
    wav: torch.Tensor,
    *,
    n_src: int,
    sample_rate: float,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    progress: bool = False,
) -> torch.Tensor:
    """Separate ``wav`` chunk by chunk into one preallocated output (see the module docs).

    Memory: the output (``n_src`` floats per input sample) plus one chunk in the network.

    Args:
        separator: Maps ``(batch, 1, chunk)`` to ``(batch, n_src, chunk)``.
        wav: Mixture, ``(batch, 1, time)``.
        n_src: Number of sources the separator returns.
        sample_rate: Sample rate of ``wav`` in Hz.
        chunk_seconds: Chunk length in seconds.
        overlap_seconds: Overlap of consecutive chunks in seconds (at most half a chunk).
        progress: Show a progress bar over chunks.

    Returns:
        Estimated sources, ``(batch, n_src, time)``.
    """
    plan = ChunkPlan.from_seconds(chunk_seconds, overlap_seconds, sample_rate)
    mix = wav.reshape(wav.shape[0], wav.shape[-1])
    length = mix.shape[-1]
    out: torch.Tensor | None = None
    blocks = (mix[:, start : start + plan.hop] for start in range(0, length, plan.hop))
    written = 0
    with chunk_bar(plan.n_chunks(length), progress) as bar:
        for piece in stream_separate(separator, blocks, n_src=n_src, plan=plan, bar=bar):
            if out is None:
                out = piece.new_empty(mix.shape[0], n_src, length)
            out[..., written : written + piece.shape[-1]] = piece
            written += piece.shape[-1]
    assert out is not None and written == length, (written, length)
    return out
