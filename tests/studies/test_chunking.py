"""The chunking study's pieces, against closed forms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from asteroid_tdanet.inference import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS
from asteroid_tdanet.studies.chunking import (
    MODULE,
    chunk_grid,
    hour_estimates,
    per_segment_scores,
    quality_study,
    si_snr_improvement,
)
from asteroid_tdanet.studies.measure import python_module, run_measured


def orthogonal_sources(n: int = 8000) -> np.ndarray:
    """Two zero-mean, orthogonal, equally loud signals (whole periods of sine and cosine)."""
    t = np.arange(n) / n
    return np.stack([np.sin(2 * np.pi * 50 * t), np.cos(2 * np.pi * 50 * t)])


def test_si_snr_improvement_closed_form():
    refs = orthogonal_sources()
    mix = refs.sum(axis=0)
    # Input: each source against the other as noise, equal energy: 0 dB. Estimates with a tenth
    # of the other source: 20 dB. Improvement 20 dB, in either order, at any scale.
    ests = refs + 0.1 * refs[::-1]
    assert si_snr_improvement(mix, refs, ests) == pytest.approx(20.0, abs=1e-6)
    assert si_snr_improvement(mix, refs, 3 * ests[::-1]) == pytest.approx(20.0, abs=1e-6)
    # Returning the mixture improves nothing; a worse estimate scores below zero.
    assert si_snr_improvement(mix, refs, np.stack([mix, mix])) == pytest.approx(0.0, abs=1e-6)
    # Noise orthogonal to both sources, twice as loud: -6.02 dB, an "improvement" of -6.02 dB.
    t = np.arange(8000) / 8000
    noise = 2 * np.sin(2 * np.pi * 70 * t)
    worse = refs + noise
    assert si_snr_improvement(mix, refs, worse) == pytest.approx(-20 * math.log10(2), abs=1e-6)


def test_segments_are_scored_separately():
    refs = np.concatenate([orthogonal_sources(), orthogonal_sources()], axis=1)
    ests = refs.copy()
    ests[:, :8000] += 0.1 * refs[::-1, :8000]  # first segment: 20 dB
    ests[:, 8000:] += 0.01 * refs[::-1, 8000:]  # second: 40 dB
    scores = per_segment_scores(refs.sum(0), refs, ests, 8000)
    assert scores == pytest.approx([20.0, 40.0], abs=1e-6)
    # A partial last segment is left out.
    assert len(per_segment_scores(refs.sum(0)[:12000], refs[:, :12000], ests[:, :12000], 8000)) == 1


def test_a_pointwise_separator_loses_nothing_to_chunking():
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 3 * 1000))
    mix = refs.sum(0)

    def weights(wav: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.8 * wav, 0.2 * wav], dim=1)

    study = quality_study(weights, mix, refs, 1000, [(0.5, 0.1), (0.4, 0.2)], segment_seconds=1.0)
    assert len(study["whole"]["per_segment"]) == 3
    for row in study["chunked"]:
        assert row["minus_whole"] == pytest.approx(0.0, abs=1e-5)
        assert row["per_segment"] == pytest.approx(study["whole"]["per_segment"], abs=1e-5)
        assert row["windowed_minus_whole"] == pytest.approx(0.0, abs=1e-5)
        windowed = study["whole"]["windowed_per_segment"]
        assert row["windowed_per_segment"] == pytest.approx(windowed, abs=1e-5)


def test_a_context_dependent_separator_shows_a_chunking_cost():
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 2000)) * np.linspace(0.1, 2.0, 2000)  # level changes in time
    mix = refs.sum(0)

    def level_dependent(wav: torch.Tensor) -> torch.Tensor:
        level = wav.pow(2).mean(-1, keepdim=True).sqrt()
        return torch.cat([wav * level, wav / level], dim=1)

    study = quality_study(level_dependent, mix, refs, 1000, [(0.2, 0.05)], segment_seconds=1.0)
    assert abs(study["chunked"][0]["minus_whole"]) > 1e-3
    assert abs(study["chunked"][0]["windowed_minus_whole"]) > 1e-3


def test_grid_and_hour_estimates():
    grid = chunk_grid()
    assert (DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS) in grid
    assert all(0 < o <= c / 2 for c, o in grid)
    probes = [{"chunk_seconds": 10.0, "peak_rss_mb": 900.0, "seconds_per_chunk": 3.0}]
    (row,) = hour_estimates(probes, [(10.0, 1.0), (20.0, 1.0)])
    # Chunks start every 9 s until one reaches 3600 s: ceil((3600 - 1) / 9) = 400.
    assert row["chunks_per_hour"] == 400 and row["work_factor"] == pytest.approx(10 / 9)
    assert row["network_minutes_per_hour"] == pytest.approx(400 * 3.0 / 60)


def test_a_probe_runs_in_a_child_process_and_reports_memory_and_time():
    run = run_measured(python_module(MODULE, "--probe", "0.25"))
    row = json.loads(run.stdout.splitlines()[-1])
    assert row["chunk_seconds"] == 0.25 and row["seconds_per_chunk"] > 0 and row["threads"] >= 1
    # The child's own figures: the full-size model on 0.25 s adds a little to what it loaded.
    assert 0 < row["model_loaded_rss_mb"] <= row["peak_rss_mb"] <= run.peak_rss_mb + 1


def test_plot_is_written(tmp_path):
    from asteroid_tdanet.studies.chunking import plot

    rows = [
        {
            "chunk_seconds": c,
            "overlap_seconds": o,
            "minus_whole": -0.1 * o,
            "windowed_minus_whole": 0.2 * o,
        }
        for c in (4.0, 10.0)
        for o in (0.5, 1.0)
    ]
    probes = [
        {"chunk_seconds": 5.0, "peak_rss_mb": 860.0},
        {"chunk_seconds": 10.0, "peak_rss_mb": 1000.0},
    ]
    path = plot({"quality": {"chunked": rows}, "probes": probes}, tmp_path / "chunking.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_windowed_si_snri_permutes_each_window_and_skips_pauses():
    from asteroid_tdanet.studies.chunking import si_snr_improvement, windowed_si_snr_improvement

    rng = np.random.default_rng(0)
    window, count = 400, 6
    refs = rng.standard_normal((2, window * count))
    mix = refs.sum(0)
    ests = refs + 0.3 * rng.standard_normal(refs.shape)
    swapped = ests.copy()
    for k in range(0, count, 2):  # the talkers swap every other window
        part = slice(k * window, (k + 1) * window)
        swapped[:, part] = ests[::-1, part]
    straight, n_straight = windowed_si_snr_improvement(mix, refs, ests, window)
    assert n_straight == count
    assert windowed_si_snr_improvement(mix, refs, swapped, window) == pytest.approx(
        (straight, count)
    )
    # One permutation for the whole signal cannot follow the swaps.
    assert si_snr_improvement(mix, refs, swapped) < straight - 5
    # A window where one talker pauses is not scored.
    paused = refs.copy()
    paused[1, window : 2 * window] *= 1e-3
    assert windowed_si_snr_improvement(paused.sum(0), paused, ests, window)[1] == count - 1
    with pytest.raises(ValueError, match="no window"):
        windowed_si_snr_improvement(mix, refs, ests, 10 * window * count)
