"""Speed perturbation of one source: play it `factor` times faster (pitch and tempo together).

As SpeechBrain's ``SpeedPerturb`` (and the TDANet authors' ``SpeedAug``, speeds 0.95, 1.0,
1.05): the signal is resampled from ``rate`` to ``rate / factor`` and played back at ``rate``,
so ``factor`` 1.05 is 5% faster and higher, and `n` samples become about ``n / factor``.
Resampling is polyphase (`scipy.signal.resample_poly`) with the factor as a small fraction
(1.05 = 21/20), so each factor costs one short FIR filter.

To get exactly `length` perturbed samples from a longer recording, read `input_length(length,
factor)` samples (the crop plus a `MARGIN` on each side, so the filter's edges fall outside the
result) and pass them to `perturb_crop`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.signal import resample_poly

# Input samples read on each side of a crop, outside what is kept: the polyphase filter's
# start-up and tail stay out of the result (scipy's filter is 20 taps per phase each side).
MARGIN = 32
MIN_FACTOR = 0.5
MAX_FACTOR = 2.0


@lru_cache(maxsize=64)
def ratio(factor: float) -> tuple[int, int]:
    """``(up, down)`` with ``up / down = 1 / factor``, the resampling that speeds up by it."""
    if not MIN_FACTOR <= factor <= MAX_FACTOR:
        raise ValueError(f"speed factor {factor} is outside [{MIN_FACTOR}, {MAX_FACTOR}]")
    frac = Fraction(factor).limit_denominator(100)
    return frac.denominator, frac.numerator


def check_factors(factors: Sequence[float]) -> tuple[float, ...]:
    """Validate a list of speed factors (non-empty, each in [0.5, 2])."""
    factors = tuple(float(f) for f in factors)
    if not factors:
        raise ValueError("speed perturbation needs at least one factor (e.g. [0.95, 1.0, 1.05])")
    for f in factors:
        ratio(f)
    return factors


def input_length(length: int, factor: float) -> int:
    """Input samples `perturb_crop` needs to return `length` samples at `factor`."""
    if factor == 1.0:
        return length
    return int(math.ceil(length * factor)) + 2 * MARGIN


def perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """The whole of `audio` (time,) played `factor` times faster: about ``len / factor``."""
    if factor == 1.0:
        return audio
    up, down = ratio(factor)
    return resample_poly(audio, up, down)


def perturb_crop(audio: np.ndarray, factor: float, length: int) -> np.ndarray:
    """`length` samples of `audio` sped up by `factor`; `audio` has `input_length` samples.

    Raises:
        ValueError: `audio` is shorter than ``input_length(length, factor)``.
    """
    need = input_length(length, factor)
    if len(audio) < need:
        raise ValueError(
            f"speed {factor}: {length} samples need {need} input samples, got {len(audio)}"
        )
    if factor == 1.0:
        return audio[:length]
    out = perturb(audio, factor)
    start = int(round(MARGIN / factor))
    return out[start : start + length]
