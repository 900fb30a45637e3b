"""The one-hour study's pieces, and the study end to end on a short recording."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY

from asteroid_tdanet import TDANet
from asteroid_tdanet.io import save_model_file
from asteroid_tdanet.studies import long_audio
from asteroid_tdanet.studies.chunking import si_snr_improvement, windowed_si_snr_improvement
from asteroid_tdanet.studies.long_audio import minute_scores, prepare_recording


def test_minute_scores_score_each_whole_minute(tmp_path):
    folder, out = tmp_path / "rec", tmp_path / "out"
    prepare_recording(folder, 150.0, seed=1)
    out.mkdir()
    s1, rate = sf.read(folder / "s1.wav")
    s2, _ = sf.read(folder / "s2.wav")
    # Estimates: each source plus a tenth of the other, swapped in the second minute.
    e1, e2 = s1 + 0.1 * s2, s2 + 0.1 * s1
    minute = 60 * rate
    e1[minute:], e2[minute:] = e2[minute:].copy(), e1[minute:].copy()
    sf.write(out / "mix_est1.wav", e1, rate, subtype="FLOAT")
    sf.write(out / "mix_est2.wav", e2, rate, subtype="FLOAT")
    scores = minute_scores(folder, out, 60.0)
    assert len(scores) == 2  # the last 30 s are not a whole minute
    mix = s1 + s2
    for k, score in enumerate(scores):
        part = slice(k * minute, (k + 1) * minute)
        refs = np.stack([s1[part], s2[part]])
        ests = np.stack([e1[part], e2[part]])
        expected = si_snr_improvement(mix[part], refs, ests)
        assert score["si_snr_imp"] == pytest.approx(expected, abs=1e-4)
        windowed, count = windowed_si_snr_improvement(mix[part], refs, ests, 2 * rate)
        assert score["windowed_si_snr_imp"] == pytest.approx(windowed, abs=1e-4)
        assert score["windows"] == count


def test_an_existing_identical_recording_is_reused(tmp_path):
    first = prepare_recording(tmp_path, 30.0, seed=0)
    stamp = (tmp_path / "mix.wav").stat().st_mtime_ns
    assert prepare_recording(tmp_path, 30.0, seed=0) == first
    assert (tmp_path / "mix.wav").stat().st_mtime_ns == stamp
    prepare_recording(tmp_path, 30.0, seed=1)  # another recording: rewritten
    assert json.loads((tmp_path / "recording.json").read_text())["seed"] == 1


@pytest.mark.slow
def test_the_study_runs_end_to_end_on_a_short_recording(tmp_path):
    model_file = save_model_file(TDANet(n_src=2, sample_rate=8000, **TINY), tmp_path / "m.pth")
    out = tmp_path / "long-audio.json"
    argv = ["--quality-model", str(model_file), "--out", str(out), "--work", str(tmp_path / "w")]
    assert long_audio.main([*argv, "--minutes", "1.5", "--skip-full", "--threads", "1"]) == 0
    data = json.loads(out.read_text())
    assert data["command"] == "make results-long-audio"
    assert data["recording"]["seconds"] == 90.0
    run = data["runs"]["quality_model"]
    assert run["peak_rss_mb"] > 0 and run["wall_minutes"] > 0
    first = data["quality"]["first_minute"]
    assert first["chunked_minus_whole"] == pytest.approx(
        first["chunked_si_snr_imp"] - first["whole_si_snr_imp"]
    )
    assert data["quality"]["per_minute"]["values"] == [first["chunked_si_snr_imp"]]
    assert first["windowed_chunked_minus_whole"] == pytest.approx(
        first["chunked_windowed_si_snr_imp"] - first["whole_windowed_si_snr_imp"]
    )
    windowed = data["quality"]["per_minute_windowed"]["values"]
    assert windowed == [first["chunked_windowed_si_snr_imp"]]
    assert data["bars"] == {
        "first_minute_chunking_costs_at_most_0_5_db": first["chunked_minus_whole"] >= -0.5,
        "first_minute_windowed_costs_at_most_0_5_db": (
            first["windowed_chunked_minus_whole"] >= -0.5
        ),
    }
    assert "other_cpu_cores" in run and "load_average_1min" in run
    # The chunked run wrote full-length estimates.
    assert sf.info(str(tmp_path / "w" / "quality" / "mix_est1.wav")).frames == 90 * 8000


def test_write_prefix_copies_the_first_minutes_exactly(tmp_path):
    prepare_recording(tmp_path, 75.0, seed=0)
    copied = long_audio.write_prefix(tmp_path / "mix.wav", tmp_path / "first.wav", 61.5)
    whole, rate = sf.read(tmp_path / "mix.wav", dtype="int16")
    first, _ = sf.read(tmp_path / "first.wav", dtype="int16")
    assert copied == 61.5 and len(first) == round(61.5 * rate)
    np.testing.assert_array_equal(first, whole[: len(first)])
    assert long_audio.write_prefix(tmp_path / "mix.wav", tmp_path / "all.wav", 999.0) == 75.0


def test_the_lock_is_held_only_inside(tmp_path):
    import fcntl

    lock = tmp_path / "heavy.lock"

    def free() -> bool:
        with open(lock, "a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(other, fcntl.LOCK_UN)
            return True

    with long_audio.held(lock):
        assert not free()
    assert free()
    with long_audio.held(None):
        pass
