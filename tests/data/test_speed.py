"""Speed perturbation: lengths, pitch and tempo, and crops cut from the right place."""

from __future__ import annotations

import numpy as np
import pytest

from asteroid_tdanet.data import speed

RATE = 8000


def tone(freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.sin(2 * np.pi * freq * t)


def peak_frequency(x: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("factor", [0.9, 0.95, 1.05, 1.1])
def test_faster_is_shorter_and_higher(factor: float):
    x = tone(440.0, 2.0)
    y = speed.perturb(x, factor)
    # n samples played factor times faster last n / factor samples.
    assert abs(len(y) - len(x) / factor) <= 1
    # Pitch rises with the speed: 440 Hz becomes 440 * factor (FFT bin 0.5 Hz wide here).
    assert abs(peak_frequency(y[: len(x) // 2]) - 440.0 * factor) <= 1.0


def test_ratios_are_small_fractions():
    assert speed.ratio(1.05) == (20, 21)  # 8000 Hz -> 7619 Hz: 21/20 faster
    assert speed.ratio(0.95) == (20, 19)
    assert speed.ratio(1.1) == (10, 11)
    assert speed.input_length(12000, 1.0) == 12000
    assert speed.input_length(12000, 1.05) == 12600 + 2 * speed.MARGIN


@pytest.mark.parametrize("factor", [0.9, 1.0, 1.05, 1.15])
def test_a_crop_is_the_matching_part_of_the_whole_perturbed_signal(factor: float):
    rng = np.random.default_rng(0)
    whole = rng.standard_normal(RATE * 3)
    up, down = speed.ratio(factor)
    # Output sample i of the perturbed whole is input instant i * factor. Reading from an
    # offset that is a whole number of output samples (a multiple of `down`) keeps the
    # filter phases aligned, so the crop must equal the whole's samples exactly.
    length, offset = 4000, 150 * down
    need = speed.input_length(length, factor)
    crop = speed.perturb_crop(whole[offset : offset + need], factor, length)
    assert crop.shape == (length,)
    margin = 0 if factor == 1.0 else speed.MARGIN
    first = offset * up // down + round(margin / factor)
    reference = speed.perturb(whole, factor)[first : first + length]
    np.testing.assert_allclose(crop, reference, rtol=0, atol=1e-9)


def test_bad_factors_and_short_inputs_are_named():
    with pytest.raises(ValueError, match="speed factor 3.0 is outside"):
        speed.check_factors([0.9, 3.0])
    with pytest.raises(ValueError, match="at least one factor"):
        speed.check_factors([])
    with pytest.raises(ValueError, match="need 1164 input samples, got 1000"):
        speed.perturb_crop(np.zeros(1000), 1.1, 1000)
