"""Chunked separation against closed forms and independent computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import TINY

from asteroid_tdanet import TDANet
from asteroid_tdanet.inference import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP_SECONDS,
    ChunkPlan,
    align_sources,
    separate_in_chunks,
    stream_separate,
)


def scaled_copies(wav: torch.Tensor) -> torch.Tensor:
    """A 'separator' that acts sample by sample, with a known answer: (0.3 x, 0.7 x)."""
    return torch.cat([0.3 * wav, 0.7 * wav], dim=1)


def run_stream(separator, wav: torch.Tensor, plan: ChunkPlan, block_sizes) -> torch.Tensor:
    """``stream_separate`` fed with blocks of the given sizes (cycled), output concatenated."""
    blocks, start = [], 0
    for size in itertools.cycle(block_sizes):
        if start >= wav.shape[-1]:
            break
        blocks.append(wav[:, start : start + size])
        start += size
    return torch.cat(list(stream_separate(separator, blocks, n_src=2, plan=plan)), dim=-1)


@pytest.mark.parametrize("length", [1, 999, 1000, 1001, 1750, 2500, 2501, 10_000, 10_333])
def test_a_pointwise_separator_is_reproduced_exactly(length):
    # Chunks of 1000 samples overlapping by 250: the two ramps of every overlap sum to one.
    wav = torch.randn(2, 1, length)
    out = separate_in_chunks(
        scaled_copies, wav, n_src=2, sample_rate=1000, chunk_seconds=1.0, overlap_seconds=0.25
    )
    torch.testing.assert_close(out, scaled_copies(wav), rtol=1e-6, atol=1e-6)


def chunk_constant_separator(calls: list[int]):
    """Chunk k (counting from 1) returns (k, -k) everywhere: chunks disagree, by design."""

    def separator(chunk: torch.Tensor) -> torch.Tensor:
        calls.append(chunk.shape[-1])
        k = float(len(calls))
        ones = torch.ones_like(chunk)
        return torch.cat([k * ones, -k * ones], dim=1)

    return separator


def expected_crossfade(length: int, window: int, overlap: int) -> tuple[np.ndarray, list[int]]:
    """Source 1 of ``chunk_constant_separator`` under a Hann cross-fade, sample by sample.

    Chunks start every ``hop`` samples until one reaches the end. Where chunks k-1 and k (from
    0) overlap, the value is k * cos^2(phi) + (k + 1) * sin^2(phi) with
    phi = pi/2 * (offset + 1/2) / overlap; elsewhere it is the covering chunk's k + 1.
    Also returns the chunk starts.
    """
    hop = window - overlap
    starts = [0]
    while starts[-1] + window < length:
        starts.append(starts[-1] + hop)
    out = np.empty(length)
    for t in range(length):
        covering = [k for k, s in enumerate(starts) if s <= t < s + window]
        if len(covering) == 2:
            k = covering[1]
            phi = 0.5 * math.pi * (t - starts[k] + 0.5) / overlap
            out[t] = k * math.cos(phi) ** 2 + (k + 1) * math.sin(phi) ** 2
        else:
            out[t] = covering[0] + 1
    return out, starts


@pytest.mark.parametrize(
    ("length", "window", "overlap"), [(2600, 1000, 200), (2601, 1000, 200), (2600, 1000, 400)]
)
def test_chunks_that_disagree_are_cross_faded_with_hann_ramps(length, window, overlap):
    calls: list[int] = []
    wav = torch.randn(1, 1, length)
    out = separate_in_chunks(
        chunk_constant_separator(calls),
        wav,
        n_src=2,
        sample_rate=1000,
        chunk_seconds=window / 1000,
        overlap_seconds=overlap / 1000,
    )
    expected, starts = expected_crossfade(length, window, overlap)
    assert calls == [min(window, length - s) for s in starts]
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out[0, 1].numpy(), -expected, atol=1e-5)
    # Plain averaging over the overlaps would be off by up to half a step: the test can tell.
    averaged = expected.copy()
    for k in range(1, len(starts)):
        averaged[starts[k] : starts[k] + overlap] = k + 0.5
    assert np.abs(averaged - expected).max() > 0.4


def test_chunks_with_swapped_outputs_are_realigned():
    calls = []

    def swapping(wav):
        calls.append(1)
        out = scaled_copies(wav)
        return out.flip(1) if len(calls) % 2 == 0 else out

    wav = torch.randn(1, 1, 9_000)
    out = separate_in_chunks(
        swapping, wav, n_src=2, sample_rate=1000, chunk_seconds=2.0, overlap_seconds=0.5
    )
    assert len(calls) == 6
    torch.testing.assert_close(out, scaled_copies(wav), rtol=1e-6, atol=1e-6)


def test_align_sources_matches_a_brute_force_search():
    gen = torch.Generator().manual_seed(1)
    previous = torch.randn(4, 3, 50, generator=gen)
    for true_perm in itertools.permutations(range(3)):
        current = previous[:, list(true_perm)] + 0.3 * torch.randn(4, 3, 50, generator=gen)
        found = align_sources(previous, current)
        for b in range(4):
            # Independent answer: the permutation with the least squared error.
            best = min(
                itertools.permutations(range(3)),
                key=lambda p, b=b: float(((previous[b] - current[b, list(p)]) ** 2).sum()),
            )
            assert found[b].tolist() == list(best)


def context_dependent(wav: torch.Tensor) -> torch.Tensor:
    """Depends on the whole chunk (its mean square), so chunk boundaries show in the output."""
    level = wav.pow(2).mean(-1, keepdim=True)
    return torch.cat([wav * level, -wav * (1 + level)], dim=1)


def test_block_sizes_do_not_change_the_result():
    wav = torch.randn(2, 1, 7_777)
    plan = ChunkPlan(window=1000, overlap=100)
    reference = separate_in_chunks(
        context_dependent, wav, n_src=2, sample_rate=1000, chunk_seconds=1.0, overlap_seconds=0.1
    )
    for sizes in ([1], [7, 3000, 13], [7_777], [999, 1001]):
        torch.testing.assert_close(run_stream(context_dependent, wav[:, 0], plan, sizes), reference)


def test_the_stream_reads_and_emits_one_chunk_at_a_time():
    """Bounded memory, structurally: input is pulled lazily and output leaves before the end."""
    plan = ChunkPlan(window=1000, overlap=100)
    block, n_blocks = 250, 400  # 100,000 samples
    events: list[tuple[str, int]] = []

    def blocks():
        for i in range(n_blocks):
            events.append(("read", i))
            yield torch.randn(1, block)

    def separator(chunk):
        assert chunk.shape[-1] <= plan.window
        events.append(("chunk", chunk.shape[-1]))
        return scaled_copies(chunk)

    emitted = 0
    for piece in stream_separate(separator, blocks(), n_src=2, plan=plan):
        reads = sum(1 for kind, _ in events if kind == "read")
        emitted += piece.shape[-1]
        # Never more read ahead than one chunk (plus the block in hand) beyond what was emitted.
        assert reads * block <= emitted + plan.window + block
    assert emitted == block * n_blocks
    assert sum(1 for kind, _ in events if kind == "chunk") == plan.n_chunks(block * n_blocks)


def test_chunk_plan_counts_and_refusals():
    plan = ChunkPlan.from_seconds(10.0, 1.0, 8000)
    assert (plan.window, plan.overlap, plan.hop) == (80_000, 8_000, 72_000)
    assert [plan.n_chunks(n) for n in (1, 80_000, 80_001, 152_000, 152_001)] == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError, match="overlap_seconds=6"):
        ChunkPlan.from_seconds(10.0, 6.0, 8000)
    with pytest.raises(ValueError, match="positive"):
        ChunkPlan.from_seconds(10.0, 0.0, 8000)


def test_the_separator_must_return_the_chunk_shape():
    with pytest.raises(ValueError, match=r"expected \(1, 2, 1000\)"):
        separate_in_chunks(
            lambda x: x,
            torch.randn(1, 1, 3000),
            n_src=2,
            sample_rate=1000,
            chunk_seconds=1.0,
            overlap_seconds=0.1,
        )


class ChunkSpy:
    """Records the length of every input the model's forward receives."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.lengths: list[int] = []
        model.register_forward_pre_hook(lambda _m, args: self.lengths.append(args[0].shape[-1]))


def test_forward_wav_chunks_automatically_only_above_60_seconds():
    # A tiny TDANet at 1 kHz (4-sample kernel) keeps a 61 s input cheap.
    rate = 1000
    model = TDANet(n_src=2, sample_rate=rate, **TINY).eval()
    spy = ChunkSpy(model)
    window = round(DEFAULT_CHUNK_SECONDS * rate)
    overlap = round(DEFAULT_OVERLAP_SECONDS * rate)
    hop = window - overlap
    with torch.inference_mode():
        model.forward_wav(torch.randn(60 * rate), chunk_seconds=None)
        assert spy.lengths == [60 * rate]  # 60 s: whole
        spy.lengths.clear()
        wav = torch.randn(61 * rate)
        out = model.forward_wav(wav, chunk_seconds=None)
        n_full = (61 * rate - window) // hop + 1
        last = 61 * rate - n_full * hop
        assert spy.lengths == [window] * n_full + ([last] if last > overlap else [])
        # Before the first overlap the output is the first chunk's, untouched.
        first = model(wav[:window])
    assert out.shape == (2, 61 * rate)
    torch.testing.assert_close(out[:, :hop], first[:, :hop])


def test_forward_wav_short_inputs_and_explicit_chunks():
    model = TDANet(n_src=2, sample_rate=8000, **TINY).eval()
    wav = torch.randn(2, 4000)
    with torch.inference_mode():
        torch.testing.assert_close(model.forward_wav(wav, chunk_seconds=1.0), model(wav))
        chunked = model.forward_wav(wav, chunk_seconds=0.2, progress=True)
        # Batch items are chunked and aligned independently.
        single = model.forward_wav(wav[1:], chunk_seconds=0.2)
    assert chunked.shape == (2, 2, 4000) and torch.isfinite(chunked).all()
    torch.testing.assert_close(chunked[1:], single, rtol=1e-5, atol=1e-6)
