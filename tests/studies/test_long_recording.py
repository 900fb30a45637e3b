"""The long recording of the chunking and long-audio studies: made as its docs say."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from asteroid_tdanet.data.mini2mix import default_sources_dir, load_sources
from asteroid_tdanet.studies.long_recording import PAUSE_MAX, PAUSE_MIN, build_long_recording


@pytest.fixture(scope="module")
def recording():
    return build_long_recording(None, 120.0, sample_rate=8000, seed=3)


def test_streams_split_the_test_speakers_and_nothing_else(recording):
    sources = load_sources(default_sources_dir())
    test_speakers = {u.speaker_id for u in sources if u.split == "test"}
    by_id = {u.utterance_id: u for u in sources}
    first, second = (set(group) for group in recording.streams)
    assert first | second == test_speakers and not first & second
    for group, events in zip(recording.streams, recording.events, strict=True):
        speakers = {by_id[uid].speaker_id for _, uid in events}
        assert speakers <= set(group) and len(speakers) > 1
        assert {by_id[uid].sex for _, uid in events} == {"F", "M"}


def test_pauses_and_order_within_each_stream(recording):
    rate = recording.sample_rate
    for events in recording.events:
        assert PAUSE_MIN * rate - 1 <= events[0][0] <= PAUSE_MAX * rate + 1
        for (start, uid), (next_start, next_uid) in zip(events, events[1:], strict=False):
            pause = next_start - (start + len(recording.clips[uid]))
            assert PAUSE_MIN * rate - 1 <= pause <= PAUSE_MAX * rate + 1
            assert uid != next_uid
        # The stream runs to the end: after its last utterance there is less than a pause left.
        start, uid = events[-1]
        assert recording.length - (start + len(recording.clips[uid])) < PAUSE_MAX * rate + 1


def test_rendering_in_blocks_equals_rendering_whole(recording):
    whole = recording.render(0, recording.length)
    assert whole.shape == (2, 120 * 8000)
    pieces = np.concatenate([s for _, s in recording.blocks(7_777)], axis=1)
    np.testing.assert_array_equal(pieces, whole)
    np.testing.assert_array_equal(recording.render(12_345, 54_321), whole[:, 12_345:54_321])
    # Both streams talk most of the time.
    active = np.abs(whole) > 0
    assert active.mean(axis=1).min() > 0.6 and (active[0] & active[1]).mean() > 0.4


def test_the_same_seed_gives_the_same_recording_and_a_longer_one_extends_it(recording):
    again = build_long_recording(None, 120.0, sample_rate=8000, seed=3)
    longer = build_long_recording(None, 300.0, sample_rate=8000, seed=3)
    other = build_long_recording(None, 120.0, sample_rate=8000, seed=4)
    assert again.events == recording.events
    for short, long in zip(recording.events, longer.events, strict=True):
        assert long[: len(short)] == short
    assert other.events != recording.events


def test_written_files_sum_exactly_and_do_not_clip(tmp_path, recording):
    paths = recording.write(tmp_path, block_seconds=7.0)
    mix, rate = sf.read(paths["mix"], dtype="int16")
    s1, _ = sf.read(paths["s1"], dtype="int16")
    s2, _ = sf.read(paths["s2"], dtype="int16")
    assert rate == 8000 and len(mix) == len(s1) == len(s2) == 120 * 8000
    np.testing.assert_array_equal(mix.astype(np.int32), s1.astype(np.int32) + s2)
    assert np.abs(mix).max() <= 0.9 * 32768 + 1
    np.testing.assert_allclose(
        np.stack([s1, s2]) / 32768, recording.render(0, recording.length), atol=0
    )
    description = json.loads(paths["description"].read_text())
    assert description["seed"] == 3 and description["seconds"] == 120.0
    assert description["streams"] == recording.streams


def test_loud_recordings_are_scaled_to_a_peak_of_0_9(monkeypatch):
    from asteroid_tdanet.studies import long_recording

    # Louder than LibriMix's range, so that the mixture must be scaled down.
    monkeypatch.setattr(long_recording, "MIN_LOUDNESS", -8.0)
    monkeypatch.setattr(long_recording, "MAX_LOUDNESS", -6.0)
    loud = long_recording.build_long_recording(None, 60.0, seed=0)
    assert loud.scale < 1.0
    assert np.abs(loud.render(0, loud.length).sum(axis=0)).max() == pytest.approx(0.9, abs=1e-4)
