"""Long two-speaker recordings built from the demo's test voices (``egs/mini2mix/sources``).

The demo's test split has 6 synthetic speakers (voice settings unseen in training) with 5
sentences each (30 utterances, 16 kHz). A long recording has two *talker streams*: stream 1
draws utterances at random from three of those speakers, stream 2 from the other three (each
group has both sexes). In each stream, utterances follow each other with pauses drawn from
U(PAUSE_MIN, PAUSE_MAX) s (the first starts after one such pause), and never the same utterance
twice in a row, until the recording is full; so both streams talk most of the time, as in a
Libri2Mix mixture, and the talker of a stream changes every few seconds. Levels follow LibriMix:
each stream gets a loudness drawn from U(-33, -25) LUFS, every utterance is scaled to it (or to a
peak of 0.9 if that would clip), and if the mixture peaks above 0.9 everything is scaled down to
0.9. Utterances are resampled to the target rate one by one (polyphase, as the demo's builder),
and sources are rounded to 16-bit so that ``mix == s1 + s2`` holds in the written files.

Everything is a function of the sources and the seed, and is rendered block by block: an hour
is written without holding it in memory, and any stretch can be rendered again exactly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ..data.mini2mix import (
    INT16_SCALE,
    MAX_AMP,
    MAX_LOUDNESS,
    MIN_LOUDNESS,
    SOURCE_RATE,
    SourceUtterance,
    default_sources_dir,
    load_sources,
)

PAUSE_MIN = 0.1
PAUSE_MAX = 0.6
DESCRIPTION_NAME = "recording.json"


@dataclass
class LongRecording:
    """A long two-stream recording, described by its events (see the module docs).

    Attributes:
        sample_rate: Rate of the rendered audio.
        length: Samples.
        streams: Per stream, the speaker IDs it draws from.
        clips: Utterances at ``sample_rate`` with their loudness gain applied, by utterance ID.
        events: Per stream, ``(start sample, utterance ID)`` in time order.
        scale: The final clipping factor (1 unless the mixture would peak above 0.9).
        info: Seed, loudness targets and other facts, for the description file.
    """

    sample_rate: int
    length: int
    streams: list[list[str]]
    clips: dict[str, np.ndarray]
    events: list[list[tuple[int, str]]]
    scale: float = 1.0
    info: dict = field(default_factory=dict)

    def render(self, start: int, stop: int) -> np.ndarray:
        """The sources over ``[start, stop)``, ``(2, stop - start)`` float64, on the 16-bit grid."""
        stop = min(stop, self.length)
        out = np.zeros((len(self.events), max(stop - start, 0)))
        for k, events in enumerate(self.events):
            for onset, uid in events:
                clip = self.clips[uid]
                lo, hi = max(onset, start), min(onset + len(clip), stop)
                if lo < hi:
                    out[k, lo - start : hi - start] += clip[lo - onset : hi - onset]
        return np.round(out * self.scale * INT16_SCALE) / INT16_SCALE

    def blocks(self, block: int):
        """``(start, sources)`` for consecutive blocks of ``block`` samples."""
        for start in range(0, self.length, block):
            yield start, self.render(start, start + block)

    def speech_fraction(self) -> list[float]:
        """Per stream, the fraction of the recording in which it talks."""
        return [
            sum(min(len(self.clips[uid]), self.length - onset) for onset, uid in ev) / self.length
            for ev in self.events
        ]

    def description(self) -> dict:
        """What the recording is made of (JSON-ready)."""
        return {
            "sample_rate": self.sample_rate,
            "seconds": self.length / self.sample_rate,
            "streams": self.streams,
            "utterances_per_stream": [len(ev) for ev in self.events],
            "speech_fraction_per_stream": [round(f, 4) for f in self.speech_fraction()],
            "clipping_scale": self.scale,
            **self.info,
        }

    def write(self, folder: str | Path, block_seconds: float = 60.0) -> dict[str, Path]:
        """Write ``mix.wav``, ``s1.wav``, ``s2.wav`` (16-bit) and ``recording.json``, in blocks.

        Returns:
            The paths, by name (``mix``, ``s1``, ``s2``, ``description``).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {name: folder / f"{name}.wav" for name in ("mix", "s1", "s2")}
        files = {
            name: sf.SoundFile(path, "w", samplerate=self.sample_rate, channels=1, subtype="PCM_16")
            for name, path in paths.items()
        }
        try:
            for _, sources in self.blocks(round(block_seconds * self.sample_rate)):
                files["s1"].write(sources[0])
                files["s2"].write(sources[1])
                files["mix"].write(sources.sum(axis=0))
        finally:
            for f in files.values():
                f.close()
        paths["description"] = folder / DESCRIPTION_NAME
        paths["description"].write_text(json.dumps(self.description(), indent=2) + "\n")
        return paths


def _resample(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    g = math.gcd(sample_rate, SOURCE_RATE)
    up, down = sample_rate // g, SOURCE_RATE // g
    return audio if up == down else resample_poly(audio, up, down)


def _stream_events(
    pool: list[SourceUtterance], clips: dict[str, np.ndarray], length: int, rate: int, rng
) -> list[tuple[int, str]]:
    events: list[tuple[int, str]] = []
    t, previous = 0, None
    while True:
        t += round(rng.uniform(PAUSE_MIN, PAUSE_MAX) * rate)
        if t >= length:
            return events
        choices = [u for u in pool if u.utterance_id != previous]
        utt = choices[rng.integers(len(choices))]
        events.append((t, utt.utterance_id))
        t += len(clips[utt.utterance_id])
        previous = utt.utterance_id


def build_long_recording(
    sources_dir: str | Path | None,
    seconds: float,
    sample_rate: int = 8000,
    seed: int = 0,
    split: str = "test",
) -> LongRecording:
    """A long two-stream recording from one split of the mini2mix sources (module docs).

    Args:
        sources_dir: ``egs/mini2mix/sources`` (None: this checkout's), see
            ``asteroid_tdanet.data.mini2mix``.
        seconds: Duration.
        sample_rate: Output rate.
        seed: Seed of every random choice; the same seed gives the same recording, and a longer
            recording with the same seed starts with a shorter one's events.
        split: Which speakers (``test``: unseen by the demo model).

    Raises:
        ValueError: fewer than two speakers in ``split``.
    """
    sources_dir = default_sources_dir() if sources_dir is None else sources_dir
    utterances = [u for u in load_sources(sources_dir) if u.split == split]
    speakers = sorted({u.speaker_id for u in utterances})
    if len(speakers) < 2:
        raise ValueError(f"{sources_dir}: split {split!r} has {len(speakers)} speaker(s), need 2")
    streams = [speakers[0::2], speakers[1::2]]
    rng = np.random.default_rng(seed)
    length = round(seconds * sample_rate)
    targets = [float(rng.uniform(MIN_LOUDNESS, MAX_LOUDNESS)) for _ in streams]
    clips: dict[str, np.ndarray] = {}
    events = []
    for k, (group, target) in enumerate(zip(streams, targets, strict=True)):
        pool = [u for u in utterances if u.speaker_id in group]
        for u in pool:
            gain = 10.0 ** ((target - u.loudness) / 20.0)
            peak = float(np.max(np.abs(u.audio)))
            if gain * peak >= 1.0:  # LibriMix's source rule
                gain = MAX_AMP / peak
            clips[u.utterance_id] = _resample(gain * u.audio, sample_rate)
        # One generator per stream: a longer recording continues the same sequences.
        stream_rng = np.random.default_rng([seed, k + 1])
        events.append(_stream_events(pool, clips, length, sample_rate, stream_rng))
    rec = LongRecording(
        sample_rate=sample_rate,
        length=length,
        streams=streams,
        clips=clips,
        events=events,
        info={
            "seed": seed,
            "split": split,
            "loudness_lufs_per_stream": [round(t, 2) for t in targets],
            "pause_seconds": [PAUSE_MIN, PAUSE_MAX],
            "source_rate": SOURCE_RATE,
        },
    )
    block = 60 * sample_rate
    peak = max(np.abs(s.sum(axis=0)).max(initial=0.0) for _, s in rec.blocks(block))
    if peak > MAX_AMP:  # LibriMix's mixture rule, over the whole recording
        rec.scale = MAX_AMP / peak
    return rec
