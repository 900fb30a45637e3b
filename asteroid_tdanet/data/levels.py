"""The benchmarks' level rules, applied to each mixture that dynamic mixing draws.

A rule draws its random levels first (`draw`, from the mixture's own generator) and then scales
the cropped sources and noise (`apply`), so a test can check the result against the numbers
drawn. Two families cover the benchmarks:

- `LibriMixLevels` (Libri2Mix, mini2mix), as LibriMix's ``create_librimix_metadata.py``: each
  source gets a loudness drawn from U(-33, -25) LUFS (ITU-R BS.1770, pyloudnorm, measured on
  the whole utterance), the noise U(-38, -30) LUFS; a source (or noise) whose whole utterance
  would then reach full scale is instead scaled to a peak of 0.9; if the mixture peaks above
  0.9, everything is scaled down together to a peak of 0.9.
- `RelativeLevels` (WHAM!, LRS2-2Mix): source 1 keeps the level it has in the data set, each
  other source is set `speaker_snr` dB below it (wsj0-2mix, under WHAM!: U(0, 5) dB;
  LRS2-2Mix: U(-5, 5) dB, the authors' range), the noise `noise_snr` dB below the louder
  speaker (WHAM!: U(-6, 3) dB); if the mixture, a source or the noise peaks above 0.9,
  everything is scaled down together to a peak of 0.9. Levels are mean powers over the crop
  (wsj0-2mix used P.56 active levels; on crops of continuous speech they differ little).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

MAX_AMP = 0.9
# Mean power below which a crop counts as silent (about -100 dBFS): never divided by.
POWER_FLOOR = 1e-10


@dataclass(frozen=True)
class UtteranceStats:
    """Whole-utterance measurements a rule may need (cached with the source pool).

    Args:
        peak: Max absolute sample of the whole utterance.
        loudness: Integrated loudness in LUFS (None when the rule needs none).
    """

    peak: float
    loudness: float | None = None


class LevelRule(Protocol):
    """What dynamic mixing asks of a level rule."""

    needs_loudness: bool

    def draw(self, rng: np.random.Generator, n_src: int, noisy: bool) -> dict[str, Any]:
        """The random levels of one mixture (plain floats, JSON-able)."""

    def apply(
        self,
        sources: np.ndarray,
        noise: np.ndarray | None,
        drawn: dict[str, Any],
        stats: list[UtteranceStats],
        noise_stats: UtteranceStats | None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scaled ``(sources (n_src, time), noise (time,) or None)``."""


def _scale_down_on_clipping(
    sources: np.ndarray, noise: np.ndarray | None, *, include_parts: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    mixture = sources.sum(axis=0) + (noise if noise is not None else 0.0)
    peak = float(np.max(np.abs(mixture))) if mixture.size else 0.0
    if include_parts:
        peak = max(peak, float(np.max(np.abs(sources))) if sources.size else 0.0)
        if noise is not None and noise.size:
            peak = max(peak, float(np.max(np.abs(noise))))
    if peak > MAX_AMP:
        weight = MAX_AMP / peak
        sources = sources * weight
        noise = noise * weight if noise is not None else None
    return sources, noise


@dataclass(frozen=True)
class LibriMixLevels:
    """LibriMix's loudness and clipping rules (see the module docstring).

    Args:
        min_loudness: Lowest source loudness in LUFS.
        max_loudness: Highest source loudness in LUFS.
        noise_offset: Noise loudness range = source range + this (LibriMix: -5 dB).
    """

    min_loudness: float = -33.0
    max_loudness: float = -25.0
    noise_offset: float = -5.0
    needs_loudness: bool = True

    def draw(self, rng: np.random.Generator, n_src: int, noisy: bool) -> dict[str, Any]:
        drawn: dict[str, Any] = {
            "loudness": rng.uniform(self.min_loudness, self.max_loudness, n_src).tolist()
        }
        if noisy:
            drawn["noise_loudness"] = float(
                rng.uniform(self.min_loudness, self.max_loudness) + self.noise_offset
            )
        return drawn

    @staticmethod
    def gain(target: float, stats: UtteranceStats) -> float:
        """Gain to `target` LUFS, or to a 0.9 peak when the utterance would reach full scale."""
        if stats.loudness is None:
            raise ValueError("LibriMix levels need the utterance loudness (pool built without)")
        gain = 10.0 ** ((target - stats.loudness) / 20.0)
        if gain * stats.peak >= 1.0:
            gain = MAX_AMP / stats.peak
        return gain

    def apply(self, sources, noise, drawn, stats, noise_stats):
        gains = np.array([self.gain(t, s) for t, s in zip(drawn["loudness"], stats, strict=True)])
        sources = sources * gains[:, None]
        if noise is not None:
            if noise_stats is None or "noise_loudness" not in drawn:
                raise ValueError("noise given without its loudness draw or statistics")
            noise = noise * self.gain(drawn["noise_loudness"], noise_stats)
        return _scale_down_on_clipping(sources, noise, include_parts=False)


@dataclass(frozen=True)
class RelativeLevels:
    """Levels relative to source 1 (wsj0-2mix / WHAM! / LRS2-2Mix; see the module docstring).

    Args:
        speaker_snr: Range of source 1's level over each other source, in dB.
        noise_snr: Range of the louder speaker's level over the noise, in dB (None: no noise).
    """

    speaker_snr: tuple[float, float]
    noise_snr: tuple[float, float] | None = None
    needs_loudness: bool = False

    def draw(self, rng: np.random.Generator, n_src: int, noisy: bool) -> dict[str, Any]:
        drawn: dict[str, Any] = {"speaker_snr": rng.uniform(*self.speaker_snr, n_src - 1).tolist()}
        if noisy:
            if self.noise_snr is None:
                raise ValueError("this data set has no noise level rule (no noisy task)")
            drawn["noise_snr"] = float(rng.uniform(*self.noise_snr))
        return drawn

    def apply(self, sources, noise, drawn, stats, noise_stats):
        powers = np.maximum(np.mean(sources**2, axis=1), POWER_FLOOR)
        gains = np.ones(len(sources))
        for i, snr in enumerate(drawn["speaker_snr"], start=1):
            gains[i] = np.sqrt(powers[0] / (powers[i] * 10.0 ** (snr / 10.0)))
        sources = sources * gains[:, None]
        if noise is not None:
            loudest = float(np.max(powers * gains**2))
            noise_power = max(float(np.mean(noise**2)), POWER_FLOOR)
            noise = noise * np.sqrt(loudest / (noise_power * 10.0 ** (drawn["noise_snr"] / 10.0)))
        return _scale_down_on_clipping(sources, noise, include_parts=True)
