"""Resampling a signal that arrives in blocks, equal to resampling it whole.

``torchaudio.functional.resample`` filters with a windowed sinc that reaches a few input samples
to each side of every output sample. Cut into segments aligned to the rate ratio and given that
much context on each side, a long signal resamples block by block to the same samples as in one
call, while holding only a block and its context in memory.
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF

# torchaudio's defaults: the filter has LOWPASS_WIDTH zero crossings at ROLLOFF x the lower rate.
LOWPASS_WIDTH = 6
ROLLOFF = 0.99


class StreamingResampler:
    """Resample ``(..., time)`` blocks from ``orig_rate`` to ``new_rate`` as they arrive.

    The concatenation of what :meth:`push` and :meth:`flush` return equals
    ``torchaudio.functional.resample`` of the concatenated input (to float rounding), and as many
    output samples (``ceil(len * new_rate / orig_rate)``).

    Args:
        orig_rate: Input sample rate (Hz, integer).
        new_rate: Output sample rate (Hz, integer).

    Examples:
        >>> rs = StreamingResampler(16000, 8000)
        >>> parts = [rs.push(block) for block in torch.randn(10, 1600).unbind()]
        >>> torch.cat([*parts, rs.flush()], -1).shape
        torch.Size([8000])
    """

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        if (
            int(orig_rate) != orig_rate
            or int(new_rate) != new_rate
            or min(orig_rate, new_rate) <= 0
        ):
            raise ValueError(
                f"resampling needs positive whole sample rates, got {orig_rate} -> {new_rate}"
            )
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        gcd = math.gcd(self.orig_rate, self.new_rate)
        # One "frame" = orig_step input samples <-> new_step output samples.
        self.orig_step, self.new_step = self.orig_rate // gcd, self.new_rate // gcd
        reach = math.ceil(
            LOWPASS_WIDTH * self.orig_step / (min(self.orig_step, self.new_step) * ROLLOFF)
        )
        # Context on each side, in whole frames: the filter's reach plus one frame of kernel.
        self.context = self.orig_step * (math.ceil(reach / self.orig_step) + 2)
        self._buffer: torch.Tensor | None = None  # input from global index _buffer_start
        self._buffer_start = 0
        self._done = 0  # input samples (a multiple of orig_step) whose output was returned

    def _resample(self, segment: torch.Tensor) -> torch.Tensor:
        if self.orig_rate == self.new_rate:
            return segment
        return AF.resample(
            segment,
            self.orig_step,
            self.new_step,
            lowpass_filter_width=LOWPASS_WIDTH,
            rolloff=ROLLOFF,
        )

    def _emit(self, end: int | None) -> torch.Tensor:
        """Output for input ``[_done, end)`` (``end=None``: to the end of the signal)."""
        assert self._buffer is not None
        start = max(self._done - self.context, 0)
        stop = None if end is None else end + self.context - self._buffer_start
        segment = self._buffer[..., start - self._buffer_start : stop]
        out = self._resample(segment)
        skip = (self._done - start) // self.orig_step * self.new_step
        if end is None:
            return out[..., skip:]
        count = (end - self._done) // self.orig_step * self.new_step
        self._done = end
        # Keep what the next segment needs as left context.
        keep_from = max(end - self.context, 0)
        self._buffer = self._buffer[..., keep_from - self._buffer_start :].clone()
        self._buffer_start = keep_from
        return out[..., skip : skip + count]

    def push(self, block: torch.Tensor) -> torch.Tensor:
        """Add input; return the output samples that no later input can change."""
        if self._buffer is None:
            self._buffer = block
        else:
            self._buffer = torch.cat([self._buffer, block], dim=-1)
        available = self._buffer_start + self._buffer.shape[-1]
        end = (available - self.context) // self.orig_step * self.orig_step
        if end <= self._done:
            return block.new_zeros(*block.shape[:-1], 0)
        return self._emit(end)

    def flush(self) -> torch.Tensor:
        """The remaining output, once the input has ended."""
        if self._buffer is None:
            raise ValueError("StreamingResampler.flush() called before any input")
        out = self._emit(None)
        self._buffer = None
        return out
