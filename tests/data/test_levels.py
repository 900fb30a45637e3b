"""The benchmarks' level rules, checked by measuring what they produce (pyloudnorm, powers)."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from asteroid_tdanet.data.levels import MAX_AMP, LibriMixLevels, RelativeLevels, UtteranceStats

RATE = 8000


def speechlike(rng: np.random.Generator, seconds: float, scale: float = 0.1) -> np.ndarray:
    n = int(seconds * RATE)
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 8 * np.pi, n) + rng.uniform(0, np.pi))
    return scale * envelope * rng.standard_normal(n)


def whole_stats(audio: np.ndarray) -> UtteranceStats:
    meter = pyloudnorm.Meter(RATE)
    return UtteranceStats(float(np.abs(audio).max()), meter.integrated_loudness(audio))


def test_librimix_sources_get_the_drawn_loudness():
    rng = np.random.default_rng(0)
    rule = LibriMixLevels()
    meter = pyloudnorm.Meter(RATE)
    for trial in range(20):
        utts = [speechlike(rng, 3.0, scale) for scale in (0.02, 0.2)]
        stats = [whole_stats(u) for u in utts]
        drawn = rule.draw(rng, 2, noisy=False)
        assert all(-33 <= t <= -25 for t in drawn["loudness"])
        crops = np.stack([u[1000:9000] for u in utts])
        scaled, noise = rule.apply(crops, None, drawn, stats, None)
        assert noise is None
        for k in range(2):
            gain = scaled[k, 0] / crops[k, 0]
            np.testing.assert_allclose(scaled[k], gain * crops[k], rtol=1e-12)
            # The whole utterance at that gain measures the drawn loudness (BS.1770).
            if np.abs(scaled.sum(0)).max() <= MAX_AMP:
                measured = meter.integrated_loudness(gain * utts[k])
                assert measured == pytest.approx(drawn["loudness"][k], abs=1e-6), trial


def test_librimix_noise_is_5_db_quieter_range():
    rng = np.random.default_rng(1)
    rule = LibriMixLevels()
    draws = [rule.draw(rng, 2, noisy=True)["noise_loudness"] for _ in range(2000)]
    assert -38 <= min(draws) < -37.9 and -30.1 < max(draws) <= -30
    utts = [speechlike(rng, 2.0) for _ in range(2)]
    noise = speechlike(rng, 2.0, 0.05)
    drawn = rule.draw(rng, 2, noisy=True)
    _, scaled = rule.apply(
        np.stack(utts), noise, drawn, [whole_stats(u) for u in utts], whole_stats(noise)
    )
    loudness = pyloudnorm.Meter(RATE).integrated_loudness(scaled)
    assert loudness == pytest.approx(drawn["noise_loudness"], abs=1e-6)


def test_librimix_clipping_rules():
    rule = LibriMixLevels()
    rng = np.random.default_rng(2)
    # A quiet utterance with one loud click: -25 LUFS would push the click past full scale,
    # so LibriMix scales the utterance to a 0.9 peak instead.
    clicky = speechlike(rng, 2.0, 0.005)
    clicky[5000] = 0.5
    other = speechlike(rng, 2.0, 0.05)
    other[5000] = 0.0  # so the mixture itself stays within 0.9
    stats = [whole_stats(clicky), whole_stats(other)]
    drawn = {"loudness": [-25.0, -33.0]}
    scaled, _ = rule.apply(np.stack([clicky, other]), None, drawn, stats, None)
    np.testing.assert_allclose(scaled[0], clicky * MAX_AMP / 0.5)
    assert np.abs(scaled.sum(0)).max() <= MAX_AMP
    # Two such utterances with their clicks at the same instant: each is scaled to a 0.9
    # peak, their sum peaks at 1.8, so both are halved together (mixture peak 0.9).
    a, b = speechlike(rng, 2.0, 0.005), speechlike(rng, 2.0, 0.005)
    a[3000], b[3000] = 0.6, 0.4
    stats = [whole_stats(a), whole_stats(b)]
    scaled, _ = rule.apply(np.stack([a, b]), None, {"loudness": [-25.0, -26.0]}, stats, None)
    np.testing.assert_allclose(scaled[0], a * 0.45 / 0.6)
    np.testing.assert_allclose(scaled[1], b * 0.45 / 0.4)
    assert np.abs(scaled.sum(0)).max() == pytest.approx(MAX_AMP)


@pytest.mark.parametrize(
    ("speaker_snr", "noise_snr"), [((0.0, 5.0), (-6.0, 3.0)), ((-5.0, 5.0), None)]
)
def test_relative_levels_are_the_drawn_snrs(speaker_snr, noise_snr):
    rng = np.random.default_rng(3)
    rule = RelativeLevels(speaker_snr=speaker_snr, noise_snr=noise_snr)
    noisy = noise_snr is not None
    seen = []
    for _ in range(50):
        sources = np.stack([speechlike(rng, 1.0, s) for s in (0.05, 0.3)])
        noise = speechlike(rng, 1.0, 0.1) if noisy else None
        drawn = rule.draw(rng, 2, noisy)
        scaled, scaled_noise = rule.apply(sources, noise, drawn, [], None)
        power = np.mean(scaled**2, axis=1)
        snr = 10 * np.log10(power[0] / power[1])
        assert snr == pytest.approx(drawn["speaker_snr"][0], abs=1e-9)
        assert speaker_snr[0] <= snr <= speaker_snr[1]
        seen.append(snr)
        if noisy:
            noise_db = 10 * np.log10(power.max() / np.mean(scaled_noise**2))
            assert noise_db == pytest.approx(drawn["noise_snr"], abs=1e-9)
        mixture = scaled.sum(0) + (scaled_noise if noisy else 0)
        parts = [np.abs(mixture).max(), np.abs(scaled).max()]
        assert max(parts) <= MAX_AMP + 1e-12
    assert max(seen) - min(seen) > 0.5 * (speaker_snr[1] - speaker_snr[0])


def test_relative_levels_keep_source_one_unless_clipping():
    rule = RelativeLevels(speaker_snr=(0.0, 5.0))
    rng = np.random.default_rng(4)
    sources = np.stack([speechlike(rng, 1.0, 0.05), speechlike(rng, 1.0, 0.05)])
    scaled, _ = rule.apply(sources, None, {"speaker_snr": [3.0]}, [], None)
    np.testing.assert_array_equal(scaled[0], sources[0])
    loud = sources * 10
    scaled, _ = rule.apply(loud, None, {"speaker_snr": [3.0]}, [], None)
    peak = max(np.abs(scaled.sum(0)).max(), np.abs(scaled).max())
    assert peak == pytest.approx(MAX_AMP)


def test_noise_without_a_rule_is_an_error():
    with pytest.raises(ValueError, match="no noise level rule"):
        RelativeLevels(speaker_snr=(-5.0, 5.0)).draw(np.random.default_rng(0), 2, noisy=True)
