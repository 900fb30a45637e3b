"""The training split's single-speaker utterances (and noise), ready for dynamic mixing.

`load_source_pool` asks the data set's registry entry which files to use (see
`asteroid_tdanet.data.registry.training_sources`), then, once per data dir, sample rate and
task, measures what the level rules need and writes it to
``DATA_DIR/dm_cache/pool_<task>_<rate>.json``:

- files not at the recipe's sample rate are resampled once (polyphase) and cached as float32
  wavs under ``DATA_DIR/dm_cache/wav<k>k/``, so training never resamples a whole file;
- for LibriMix's rules, each utterance's integrated loudness (pyloudnorm) and peak;
- lengths (from the headers otherwise).

Cached copies are recorded relative to the data dir, so the pool stays valid when the data dir
is moved or reached from another working directory.

The cache is keyed by the list of files, so a changed training split rebuilds it; writes are
atomic, so DDP processes that build it at the same time write the same bytes. A pool small
enough (`PRELOAD_BYTES`) is held in memory; a large one is read from the files per crop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

from .index import read_meta
from .levels import UtteranceStats
from .registry import SourceFile, training_sources

log = logging.getLogger(__name__)

POOL_VERSION = 2  # 2: cached copies recorded relative to the data dir
CACHE_DIR = "dm_cache"
# Pools up to this size (float32) are read into memory once: 512 MB is about 4.6 h at 8 kHz.
PRELOAD_BYTES = 512 * 2**20


@dataclass(frozen=True)
class PoolUtterance:
    """One utterance (or noise recording) of the pool, at the recipe's sample rate.

    Args:
        id: Utterance id.
        speaker: Speaker id ("" for noise).
        path: Audio file at the recipe's sample rate (the original or the cached copy).
        length: Samples.
        peak: Max absolute sample (None when not measured).
        loudness: Integrated loudness in LUFS (None when not measured).
    """

    id: str
    speaker: str
    path: str
    length: int
    peak: float | None = None
    loudness: float | None = None

    @property
    def stats(self) -> UtteranceStats:
        return UtteranceStats(
            peak=self.peak if self.peak is not None else 1.0, loudness=self.loudness
        )


class SourcePool:
    """Utterances of the training split grouped by speaker, plus noise recordings.

    Args:
        speech: Speech utterances.
        noise: Noise recordings (empty for clean tasks).
        sample_rate: Their sample rate in Hz.
    """

    def __init__(self, speech: list[PoolUtterance], noise: list[PoolUtterance], sample_rate: int):
        self.speech = list(speech)
        self.noise = list(noise)
        self.sample_rate = int(sample_rate)
        self._audio: dict[str, np.ndarray] = {}

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.speech})

    def total_bytes(self) -> int:
        return 4 * sum(u.length for u in self.speech + self.noise)

    def preload(self) -> bool:
        """Read every file into memory (float32) if the pool is small; returns whether it did."""
        if self._audio or self.total_bytes() > PRELOAD_BYTES:
            return bool(self._audio)
        for u in self.speech + self.noise:
            self._audio[u.path] = self._read_file(u.path, 0, None).astype(np.float32)
        return True

    def _read_file(self, path: str, start: int, stop: int | None) -> np.ndarray:
        try:
            audio, rate = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise RuntimeError(f"cannot read {path}: {err}") from err
        if rate != self.sample_rate:
            raise ValueError(f"{path} has sample rate {rate} Hz, expected {self.sample_rate} Hz")
        if audio.shape[1] != 1:
            raise ValueError(f"{path} has {audio.shape[1]} channels, expected mono")
        return audio[:, 0]

    def read(self, item: PoolUtterance, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of `item` as float64 (zero-padded past its ends)."""
        lo, hi = max(start, 0), min(stop, item.length)
        cached = self._audio.get(item.path)
        part = cached[lo:hi] if cached is not None else self._read_file(item.path, lo, hi)
        out = np.zeros(stop - start)
        out[lo - start : lo - start + len(part)] = part
        return out


def _pool_key(
    speech: list[SourceFile], noise: list[SourceFile], sample_rate: int, loudness: bool
) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([POOL_VERSION, sample_rate, loudness]).encode())
    for f in speech + noise:
        digest.update(json.dumps([f.id, f.speaker, f.path, f.sample_rate]).encode())
    return digest.hexdigest()


def _atomic_write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(tmp, audio.astype(np.float32), sample_rate, subtype="FLOAT", format="WAV")
    os.replace(tmp, path)


def _measure(
    f: SourceFile, sample_rate: int, cache_dir: Path, loudness: bool, meter
) -> PoolUtterance | None:
    """Resample (once, cached) and measure one file; None when it is silent or too short."""
    path = f.path
    if f.sample_rate != sample_rate:
        cached = cache_dir / f"wav{sample_rate // 1000}k" / f"{f.id}.wav"
        if not cached.is_file():
            audio, rate = sf.read(f.path, dtype="float64", always_2d=True)
            if rate != f.sample_rate:
                raise ValueError(f"{f.path} has sample rate {rate} Hz, expected {f.sample_rate}")
            g = math.gcd(sample_rate, rate)
            audio = resample_poly(audio[:, 0], sample_rate // g, rate // g)
            _atomic_write_wav(cached, audio, sample_rate)
        path = str(cached)
    if not loudness:
        info = sf.info(path)
        if info.samplerate != sample_rate:
            raise ValueError(f"{path} has sample rate {info.samplerate} Hz, expected {sample_rate}")
        return PoolUtterance(f.id, f.speaker, path, int(info.frames))
    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"{path} has sample rate {rate} Hz, expected {sample_rate}")
    audio = audio[:, 0]
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyloudnorm warns about clipping-prone input
            lufs = float(meter.integrated_loudness(audio))
    except ValueError:  # shorter than one 400 ms gating block
        return None
    if peak == 0.0 or not math.isfinite(lufs):
        return None
    return PoolUtterance(f.id, f.speaker, path, len(audio), peak, lufs)


def load_source_pool(
    name: str,
    data_dir: str | Path,
    *,
    sample_rate: int,
    n_src: int,
    task: str,
    loudness: bool,
    progress: bool = True,
) -> SourcePool:
    """The dynamic-mixing pool of a prepared data dir, built once and cached (module doc).

    Args:
        name: Registered data set name.
        data_dir: Prepared data dir (``dataset.json``, ``train/``).
        sample_rate: The recipe's sample rate in Hz.
        n_src: Sources per mixture.
        task: "sep_clean" or "sep_noisy" (noise recordings only for the latter).
        loudness: Measure loudness and peaks (LibriMix's rules need them).
        progress: Show a progress bar while building.

    Raises:
        FileNotFoundError: not a prepared data dir, or a source file is missing.
        ValueError: files at an unexpected rate, or fewer than `n_src` speakers.
    """
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    if meta is None:
        raise FileNotFoundError(
            f"{data_dir}/dataset.json not found: run the prepare step (stage 1) first"
        )
    speech_files, noise_files = training_sources(name, data_dir, meta, n_src, task)
    key = _pool_key(speech_files, noise_files, sample_rate, loudness)
    cache_dir = data_dir / CACHE_DIR
    index = cache_dir / f"pool_{task}_{sample_rate}.json"
    if index.is_file():
        cached = json.loads(index.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            pool = SourcePool(
                [_from_record(u, data_dir) for u in cached["speech"]],
                [_from_record(u, data_dir) for u in cached["noise"]],
                sample_rate,
            )
            _check_speakers(pool, n_src, name)
            return pool
    meter = None
    if loudness:
        import pyloudnorm

        meter = pyloudnorm.Meter(sample_rate)
    measured: dict[str, list[PoolUtterance]] = {"speech": [], "noise": []}
    skipped = 0
    for kind, files in (("speech", speech_files), ("noise", noise_files)):
        for f in tqdm(
            files,
            desc=f"dynamic mixing: {kind} pool",
            unit="file",
            disable=not progress or not files,
        ):
            if not os.path.isfile(f.path):
                raise FileNotFoundError(f"{f.path} (a {name} training {kind} file) is missing")
            item = _measure(f, sample_rate, cache_dir, loudness, meter)
            if item is None:
                skipped += 1
            else:
                measured[kind].append(item)
    if skipped:
        log.warning("dynamic mixing: %d silent or too short files left out of the pool", skipped)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = index.with_name(f".{index.name}.{os.getpid()}.tmp")
    body = {"key": key, **{k: [_record(u, data_dir) for u in v] for k, v in measured.items()}}
    tmp.write_text(json.dumps(body), encoding="utf-8")
    os.replace(tmp, index)
    pool = SourcePool(measured["speech"], measured["noise"], sample_rate)
    _check_speakers(pool, n_src, name)
    log.info(
        "dynamic mixing pool: %d utterances of %d speakers (%.2f h), %d noise files",
        len(pool.speech),
        len(pool.speakers),
        sum(u.length for u in pool.speech) / sample_rate / 3600,
        len(pool.noise),
    )
    return pool


def _record(item: PoolUtterance, data_dir: Path) -> dict:
    """``item`` as stored in the pool's JSON: a cached copy's path relative to ``data_dir``."""
    record = asdict(item)
    cache_dir = data_dir / CACHE_DIR
    if Path(item.path).is_relative_to(cache_dir):
        record["path"] = Path(item.path).relative_to(data_dir).as_posix()
    return record


def _from_record(record: dict, data_dir: Path) -> PoolUtterance:
    """The inverse of :func:`_record`: relative paths are taken from ``data_dir``."""
    path = Path(record["path"])
    return PoolUtterance(**{**record, "path": str(path if path.is_absolute() else data_dir / path)})


def _check_speakers(pool: SourcePool, n_src: int, name: str) -> None:
    if len(pool.speakers) < n_src:
        raise ValueError(
            f"dynamic mixing of {name} needs utterances of at least {n_src} speakers; the "
            f"training split has {len(pool.speakers)}"
        )
