"""Chunked overlap-add separation against closed forms."""

from __future__ import annotations

import torch
from conftest import TINY

from asteroid_tdanet import TDANet
from asteroid_tdanet.inference import separate_in_chunks


def scaled_copies(wav: torch.Tensor) -> torch.Tensor:
    """A 'separator' with a known answer: (0.3 x, 0.7 x)."""
    return torch.cat([0.3 * wav, 0.7 * wav], dim=1)


def test_chunking_reproduces_a_pointwise_separator_exactly():
    wav = torch.randn(2, 1, 10_000)
    out = separate_in_chunks(scaled_copies, wav, n_src=2, sample_rate=1000, chunk_seconds=1.0)
    torch.testing.assert_close(out, scaled_copies(wav), rtol=1e-5, atol=1e-5)


def test_chunks_with_swapped_outputs_are_reordered():
    calls = []

    def swapping(wav):
        calls.append(1)
        out = scaled_copies(wav)
        return out.flip(1) if len(calls) % 2 else out

    wav = torch.randn(1, 1, 9_000)
    out = separate_in_chunks(swapping, wav, n_src=2, sample_rate=1000, chunk_seconds=2.0)
    assert len(calls) > 4
    expected = scaled_copies(wav)
    # Up to one global permutation, every chunk is aligned with the first.
    error = min((out - expected).abs().max(), (out - expected.flip(1)).abs().max())
    assert error < 1e-4


def test_short_inputs_are_not_chunked():
    model = TDANet(n_src=2, sample_rate=8000, **TINY).eval()
    wav = torch.randn(1, 4000)
    with torch.inference_mode():
        torch.testing.assert_close(model.forward_wav(wav, chunk_seconds=1.0), model(wav))
        chunked = model.forward_wav(wav, chunk_seconds=0.2, progress=True)
    assert chunked.shape == (1, 2, 4000) and torch.isfinite(chunked).all()
