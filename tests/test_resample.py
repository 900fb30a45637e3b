"""Block-by-block resampling equals torchaudio's resampling of the whole signal."""

from __future__ import annotations

import pytest
import torch
import torchaudio.functional as AF

from asteroid_tdanet.resample import StreamingResampler


def resample_in_blocks(x: torch.Tensor, orig: int, new: int, sizes: list[int]) -> torch.Tensor:
    resampler, parts, start, k = StreamingResampler(orig, new), [], 0, 0
    while start < x.shape[-1]:
        parts.append(resampler.push(x[..., start : start + sizes[k % len(sizes)]]))
        start += sizes[k % len(sizes)]
        k += 1
    return torch.cat([*parts, resampler.flush()], dim=-1)


@pytest.mark.parametrize(
    ("orig", "new"),
    [(16000, 8000), (8000, 16000), (44100, 8000), (8000, 44100), (22050, 16000), (8000, 8000)],
)
@pytest.mark.parametrize("sizes", [[1, 7, 5000], [160], [20_011]])
def test_blocks_resample_like_the_whole_signal(orig, new, sizes):
    x = torch.randn(2, 20_011, generator=torch.Generator().manual_seed(0))
    whole = AF.resample(x, orig, new)
    streamed = resample_in_blocks(x, orig, new, sizes)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-6)


def test_the_buffer_stays_small():
    resampler = StreamingResampler(44100, 8000)
    for _ in range(200):
        resampler.push(torch.randn(4410))
        assert resampler._buffer.shape[-1] <= 4410 + 2 * resampler.context


def test_bad_rates_and_flush_without_input():
    with pytest.raises(ValueError, match="whole sample rates"):
        StreamingResampler(44100.5, 8000)
    with pytest.raises(ValueError, match="before any input"):
        StreamingResampler(16000, 8000).flush()
