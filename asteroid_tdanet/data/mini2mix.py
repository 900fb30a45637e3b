"""Mini2Mix: a small offline two-speaker set in the exact Libri2Mix layout, for the demo.

The speech sources are synthetic voices committed in ``egs/mini2mix/sources/`` (made by
``local/make_mini2mix_sources.sh``). This module mixes them the way LibriMix mixes LibriSpeech
(Cosentino et al., 2020) and writes what LibriMix's scripts write::

    ROOT/Libri2Mix/wav8k/min/{train-100,dev,test}/{mix_clean,s1,s2}/<mixture_ID>.wav
    ROOT/Libri2Mix/wav8k/min/metadata/mixture_{train-100,dev,test}_mix_clean.csv
    ROOT/Libri2Mix/wav8k/min/metadata/metrics_{train-100,dev,test}_mix_clean.csv
    ROOT/Libri2Mix/metadata/libri2mix_{train-clean-100,dev-clean,test-clean}[_info].csv
    ROOT/Libri2Mix/metadata/mini2mix_build.json      (our build parameters; written last)

so the benchmark recipes' LibriMix code runs on it unchanged.

The LibriMix recipe, per mixture:
1. each source (16 kHz) gets a random loudness drawn from U(-33, -25) LUFS (ITU-R BS.1770,
   pyloudnorm); a source that would then clip is instead scaled to a peak of 0.9;
2. if the sum of the scaled sources (padded to the longer one, "max" mode) peaks above 0.9,
   all sources are scaled down together so that it peaks at 0.9;
3. the scaled sources are resampled to the target rate (polyphase, scipy) and cut to the
   shorter one ("min" mode); the mixture is their sum.
Mixtures pair two different speakers (and different sentences) of the same split. Unlike
LibriMix's train set, utterances are reused across mixtures: there are only a few hundred.

Two departures, both to keep files exact: sources are rounded to int16 first and the mixture
is the sum of the rounded sources (so mix == s1 + s2 holds sample-wise in the files), and a
mixture that resampling pushed to full scale is scaled down again (flagged as renormalised)
rather than wrapped around by the int16 conversion.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

log = logging.getLogger(__name__)

SOURCE_RATE = 16000
MIN_LOUDNESS = -33.0
MAX_LOUDNESS = -25.0
MAX_AMP = 0.9
# int16 full scale as soundfile reads it back (x / 32768), so a file reads as what we computed.
INT16_SCALE = 32768
#: Our split name -> (folder in wav8k/min, LibriSpeech subset name used in metadata names).
SPLITS = {
    "train": ("train-100", "train-clean-100"),
    "dev": ("dev", "dev-clean"),
    "test": ("test", "test-clean"),
}
DEFAULT_N_TRAIN = 800
DEFAULT_N_DEV = 100
DEFAULT_N_TEST = 200
STAMP_NAME = "mini2mix_build.json"
FORMAT_VERSION = 1
MIXTURE_COLUMNS = ["mixture_ID", "mixture_path", "source_1_path", "source_2_path", "length"]
METRICS_COLUMNS = ["mixture_ID", "source_1_SNR", "source_2_SNR"]
GAIN_COLUMNS = ["mixture_ID", "source_1_path", "source_1_gain", "source_2_path", "source_2_gain"]
INFO_COLUMNS = [
    "mixture_ID",
    "speaker_1_ID",
    "speaker_1_sex",
    "speaker_2_ID",
    "speaker_2_sex",
    "sentence_1_ID",
    "sentence_2_ID",
    "source_1_loudness",
    "source_2_loudness",
    "renormalized",
]


@dataclass
class SourceUtterance:
    """One committed source recording, decoded once and shared by all its mixtures.

    Args:
        utterance_id: e.g. ``flite-slt-0042`` (no ``_``: LibriMix joins IDs with it).
        speaker_id: Speaker, e.g. ``flite-slt``.
        sex: ``M`` or ``F``.
        split: ``train``, ``dev`` or ``test``.
        sentence_id: Line number of the sentence in ``sentences.txt``.
        rel_path: Path relative to the sources folder.
        audio: Samples at 16 kHz, float64, shape (time,).
        loudness: Integrated loudness of ``audio`` in LUFS.
    """

    utterance_id: str
    speaker_id: str
    sex: str
    split: str
    sentence_id: int
    rel_path: str
    audio: np.ndarray
    loudness: float


def _read_tsv(path: Path, required: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a mini2mix sources folder")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path} lists nothing")
    return rows


def load_sources(sources_dir: str | Path) -> list[SourceUtterance]:
    """Read the index and audio of a sources folder, checking every file.

    Raises:
        FileNotFoundError: the folder, its index or a listed file is missing.
        ValueError: a file is not 16 kHz mono, is silent, or the index is inconsistent.
    """
    sources_dir = Path(sources_dir)
    if not sources_dir.is_dir():
        raise FileNotFoundError(f"mini2mix sources folder {sources_dir} does not exist")
    speakers = {
        row["speaker_id"]: row
        for row in _read_tsv(sources_dir / "speakers.tsv", ["speaker_id", "sex", "split"])
    }
    rows = _read_tsv(
        sources_dir / "utterances.tsv",
        ["utterance_id", "speaker_id", "split", "sentence_id", "path"],
    )
    meter = pyloudnorm.Meter(SOURCE_RATE)
    utterances = []
    for row in rows:
        uid, spk = row["utterance_id"], row["speaker_id"]
        if "_" in uid:
            raise ValueError(f"utterance_id {uid!r} contains '_', which separates mixture IDs")
        if spk not in speakers:
            raise ValueError(f"{uid}: speaker {spk!r} is not in speakers.tsv")
        if row["split"] != speakers[spk]["split"] or row["split"] not in SPLITS:
            raise ValueError(f"{uid}: split {row['split']!r} disagrees with speakers.tsv")
        path = sources_dir / row["path"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} (listed in utterances.tsv) not found")
        audio, rate = sf.read(path, dtype="float64", always_2d=True)
        if rate != SOURCE_RATE or audio.shape[1] != 1:
            raise ValueError(
                f"{path}: expected {SOURCE_RATE} Hz mono, got {rate} Hz, {audio.shape[1]} channels"
            )
        audio = audio[:, 0]
        loudness = meter.integrated_loudness(audio)
        if not math.isfinite(loudness):
            raise ValueError(f"{path}: silent or too short to measure loudness")
        utterances.append(
            SourceUtterance(
                utterance_id=uid,
                speaker_id=spk,
                sex=speakers[spk]["sex"],
                split=row["split"],
                sentence_id=int(row["sentence_id"]),
                rel_path=row["path"],
                audio=audio,
                loudness=loudness,
            )
        )
    return utterances


def choose_pairs(
    utterances: list[SourceUtterance], n: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Draw `n` distinct pairs of utterances by different speakers saying different sentences.

    Returns:
        (index of source 1, index of source 2) pairs; the order inside a pair is random too.
    """
    candidates = [
        (i, j)
        for i in range(len(utterances))
        for j in range(i + 1, len(utterances))
        if utterances[i].speaker_id != utterances[j].speaker_id
        and utterances[i].sentence_id != utterances[j].sentence_id
    ]
    if n > len(candidates):
        split = utterances[0].split if utterances else "?"
        raise ValueError(
            f"{split}: asked for {n} mixtures but the sources allow only {len(candidates)} "
            "distinct pairs of different speakers"
        )
    picks = rng.choice(len(candidates), size=n, replace=False)
    swaps = rng.random(n) < 0.5
    return [
        candidates[k][::-1] if swap else candidates[k]
        for k, swap in zip(picks.tolist(), swaps.tolist(), strict=True)
    ]


def librimix_gains(
    sources: list[SourceUtterance], rng: np.random.Generator
) -> tuple[list[float], bool]:
    """LibriMix's loudness gains for the sources of one mixture (at 16 kHz, "max" mode).

    Returns:
        The gain of each source, and whether a clipping rule overrode the random loudness.
    """
    gains, renormalized = [], False
    for src in sources:
        target = rng.uniform(MIN_LOUDNESS, MAX_LOUDNESS)
        gain = 10.0 ** ((target - src.loudness) / 20.0)
        peak = np.max(np.abs(src.audio))
        if gain * peak >= 1.0:
            gain, renormalized = MAX_AMP / peak, True
        gains.append(gain)
    length = max(len(s.audio) for s in sources)
    mixture = np.zeros(length)
    for src, gain in zip(sources, gains, strict=True):
        mixture[: len(src.audio)] += gain * src.audio
    peak = np.max(np.abs(mixture))
    if peak > MAX_AMP:
        gains = [g * MAX_AMP / peak for g in gains]
        renormalized = True
    return gains, renormalized


def _resampler(sample_rate: int):
    g = math.gcd(sample_rate, SOURCE_RATE)
    up, down = sample_rate // g, SOURCE_RATE // g
    if up == down:
        return lambda x: x
    return lambda x: resample_poly(x, up, down)


def _snr_db(signal: np.ndarray, rest: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(signal**2) / max(np.sum(rest**2), 1e-20)))


def sources_digest(sources_dir: Path) -> str:
    """SHA-256 of a sources folder's index files (what a build records)."""
    digest = hashlib.sha256()
    for name in ("speakers.tsv", "utterances.tsv"):
        digest.update((sources_dir / name).read_bytes())
    return digest.hexdigest()


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _build_split(
    split: str,
    utterances: list[SourceUtterance],
    n: int,
    sample_rate: int,
    seed: int,
    stage_top: Path,
    final_top: Path,
    progress: bool,
) -> int:
    """Write one split's audio and CSVs under ``stage_top``; paths in CSVs use ``final_top``.

    Returns:
        How many mixtures needed a clipping renormalisation.
    """
    split_dir, subset = SPLITS[split]
    rate_dir = Path(f"wav{sample_rate // 1000}k") / "min"
    for sub in ("mix_clean", "s1", "s2"):
        (stage_top / rate_dir / split_dir / sub).mkdir(parents=True)
    # One generator per split, so a split's content does not depend on the others' sizes.
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    pairs = choose_pairs(utterances, n, rng)
    resample = _resampler(sample_rate)
    resampled = {}  # resampling is linear: resample once per utterance, scale per mixture
    mixture_rows, metrics_rows, gain_rows, info_rows = [], [], [], []
    n_renormalized = 0
    for i, j in tqdm(pairs, desc=f"mini2mix {split_dir}", unit="mix", disable=not progress):
        pair = [utterances[i], utterances[j]]
        gains, renormalized = librimix_gains(pair, rng)
        for k in (i, j):
            if k not in resampled:
                resampled[k] = resample(utterances[k].audio)
        length = min(len(resampled[i]), len(resampled[j]))
        scaled = [g * resampled[k][:length] for g, k in zip(gains, (i, j), strict=True)]
        peak = max(np.max(np.abs(scaled[0] + scaled[1])), *(np.max(np.abs(s)) for s in scaled))
        if peak * INT16_SCALE >= INT16_SCALE - 1:  # resampling overshoot: would overflow int16
            gains = [g * MAX_AMP / peak for g in gains]
            scaled = [s * MAX_AMP / peak for s in scaled]
            renormalized = True
        n_renormalized += renormalized
        ints = [np.round(s * INT16_SCALE).astype(np.int16) for s in scaled]
        mix = (ints[0].astype(np.int32) + ints[1]).astype(np.int16)
        mixture_id = f"{pair[0].utterance_id}_{pair[1].utterance_id}"
        paths = []
        for sub, data in (("mix_clean", mix), ("s1", ints[0]), ("s2", ints[1])):
            rel = rate_dir / split_dir / sub / f"{mixture_id}.wav"
            sf.write(stage_top / rel, data, sample_rate, subtype="PCM_16")
            paths.append(str(final_top / rel))
        mixture_rows.append([mixture_id, *paths, length])
        mix_f = mix.astype(np.float64)
        snrs = [_snr_db(s.astype(np.float64), mix_f - s) for s in ints]
        metrics_rows.append([mixture_id, *snrs])
        gain_rows.append([mixture_id, pair[0].rel_path, gains[0], pair[1].rel_path, gains[1]])
        info_rows.append(
            [mixture_id]
            + [v for s in pair for v in (s.speaker_id, s.sex)]
            + [s.sentence_id for s in pair]
            + [s.loudness + 20 * math.log10(g) for s, g in zip(pair, gains, strict=True)]
            + [renormalized]
        )
    meta = stage_top / rate_dir / "metadata"
    meta.mkdir(exist_ok=True)
    _write_csv(meta / f"mixture_{split_dir}_mix_clean.csv", MIXTURE_COLUMNS, mixture_rows)
    _write_csv(meta / f"metrics_{split_dir}_mix_clean.csv", METRICS_COLUMNS, metrics_rows)
    gen_meta = stage_top / "metadata"
    gen_meta.mkdir(exist_ok=True)
    _write_csv(gen_meta / f"libri2mix_{subset}.csv", GAIN_COLUMNS, gain_rows)
    _write_csv(gen_meta / f"libri2mix_{subset}_info.csv", INFO_COLUMNS, info_rows)
    return n_renormalized


def _is_complete(top: Path, params: dict) -> bool:
    """Whether ``top`` is a finished build with exactly these parameters."""
    stamp = top / "metadata" / STAMP_NAME
    if not stamp.is_file():
        return False
    recorded = json.loads(stamp.read_text(encoding="utf-8"))
    recorded.pop("sources_dir", None)  # where the sources were: not a build parameter
    if recorded != params:
        raise FileExistsError(
            f"{top} holds a mini2mix build with other parameters ({stamp}); "
            "pass force=True (--force) to rebuild it, or choose another output root"
        )
    meta = top / f"wav{params['sample_rate'] // 1000}k" / "min" / "metadata"
    for split_dir, _ in SPLITS.values():
        csv_path = meta / f"mixture_{split_dir}_mix_clean.csv"
        if not csv_path.is_file():
            return False
        with open(csv_path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                for col in ("mixture_path", "source_1_path", "source_2_path"):
                    if not os.path.isfile(row[col]):
                        return False
    return True


def build_mini2mix(
    sources_dir: str | Path,
    out_root: str | Path,
    *,
    n_train: int = DEFAULT_N_TRAIN,
    n_dev: int = DEFAULT_N_DEV,
    n_test: int = DEFAULT_N_TEST,
    sample_rate: int = 8000,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Mix the committed sources into ``out_root/Libri2Mix`` (LibriMix layout, "min" mode).

    Idempotent: a complete build with the same parameters is kept as is. The tree is built in
    a staging folder and moved into place at the end, so an interrupted run leaves no
    half-built ``Libri2Mix``.

    Args:
        sources_dir: Folder with ``speakers.tsv``, ``utterances.tsv`` and the 16 kHz FLACs.
        out_root: Download root; the set goes to ``out_root/Libri2Mix``.
        n_train: Number of train mixtures (``train-100``).
        n_dev: Number of validation mixtures (``dev``).
        n_test: Number of test mixtures (``test``).
        sample_rate: Output rate in Hz, a whole number of kHz dividing into ``wav{k}k``.
        seed: Seed of the pairings and loudness draws (same seed -> identical files).
        force: Rebuild even if a build (of this builder) already exists.
        progress: Show tqdm progress bars.

    Returns:
        The folder holding the split folders, e.g. ``out_root/Libri2Mix/wav8k/min``.

    Raises:
        FileNotFoundError: missing sources folder, index or audio file.
        FileExistsError: ``out_root/Libri2Mix`` exists but is not ours, or is ours with other
            parameters and ``force`` is False.
        ValueError: bad sizes or sample rate, or sources that cannot give that many mixtures.
    """
    sources_dir = Path(sources_dir).resolve()
    out_root = Path(out_root).resolve()
    if sample_rate <= 0 or sample_rate % 1000 or sample_rate > SOURCE_RATE:
        raise ValueError(
            f"sample_rate must be a whole number of kHz up to {SOURCE_RATE}, got {sample_rate}"
        )
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    for split, n in sizes.items():
        if n < 1:
            raise ValueError(f"n_{split} must be at least 1, got {n}")
    _check_sources_dir(sources_dir)
    params = {
        "format": FORMAT_VERSION,
        "sources_sha256": sources_digest(sources_dir),
        "sizes": sizes,
        "sample_rate": sample_rate,
        "seed": seed,
    }
    top = out_root / "Libri2Mix"
    rate_root = top / f"wav{sample_rate // 1000}k" / "min"
    if top.exists():
        if not (top / "metadata" / STAMP_NAME).is_file():
            raise FileExistsError(
                f"{top} exists but was not made by mini2mix (no metadata/{STAMP_NAME}); "
                "not touching it: choose another output root"
            )
        if not force:
            if _is_complete(top, params):  # raises if built with other parameters
                log.info("mini2mix: %s is complete, nothing to do", rate_root)
                return rate_root
            log.info("mini2mix: %s is incomplete, rebuilding it", top)

    utterances = load_sources(sources_dir)
    by_split = {split: [u for u in utterances if u.split == split] for split in SPLITS}
    for split, utts in by_split.items():
        if len({u.speaker_id for u in utts}) < 2:
            raise ValueError(f"{sources_dir}: split {split!r} needs at least two speakers")

    stage = out_root / ".Libri2Mix.partial"
    if stage.exists():
        shutil.rmtree(stage)  # leftovers of an interrupted run of ours
    stage.mkdir(parents=True)
    renormalized = {}
    for split in SPLITS:
        renormalized[split] = _build_split(
            split, by_split[split], sizes[split], sample_rate, seed, stage, top, progress
        )
    # The sources folder is recorded too: dynamic mixing reads the whole utterances from it.
    stamp = {**params, "sources_dir": str(sources_dir)}
    (stage / "metadata" / STAMP_NAME).write_text(
        json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    if top.exists():
        shutil.rmtree(top)  # ours (stamp checked above), being rebuilt
    os.replace(stage, top)
    for split, (split_dir, _) in SPLITS.items():
        log.info(
            "mini2mix: %s: %d mixtures from %d utterances of %d speakers (%d renormalised)",
            split_dir,
            sizes[split],
            len(by_split[split]),
            len({u.speaker_id for u in by_split[split]}),
            renormalized[split],
        )
    return rate_root


def _check_sources_dir(sources_dir: Path) -> None:
    if not sources_dir.is_dir():
        raise FileNotFoundError(f"mini2mix sources folder {sources_dir} does not exist")
    for name in ("speakers.tsv", "utterances.tsv"):
        if not (sources_dir / name).is_file():
            raise FileNotFoundError(
                f"{sources_dir / name} not found: {sources_dir} is not a mini2mix sources folder "
                "(expected egs/mini2mix/sources of the repository)"
            )


def default_sources_dir() -> Path:
    """The sources committed in this repository (``egs/mini2mix/sources``)."""
    return Path(__file__).resolve().parents[2] / "egs" / "mini2mix" / "sources"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m asteroid_tdanet.data.mini2mix",
        description="Build the offline Mini2Mix set (Libri2Mix layout) from embedded sources.",
    )
    parser.add_argument(
        "--sources", type=Path, default=None, help="sources folder (default: the committed one)"
    )
    parser.add_argument("--out", type=Path, required=True, help="root; writes ROOT/Libri2Mix")
    parser.add_argument("--n-train", type=int, default=DEFAULT_N_TRAIN)
    parser.add_argument("--n-dev", type=int, default=DEFAULT_N_DEV)
    parser.add_argument("--n-test", type=int, default=DEFAULT_N_TEST)
    parser.add_argument("--sample-rate", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild an existing build")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = build_mini2mix(
            args.sources or default_sources_dir(),
            args.out,
            n_train=args.n_train,
            n_dev=args.n_dev,
            n_test=args.n_test,
            sample_rate=args.sample_rate,
            seed=args.seed,
            force=args.force,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        parser.exit(1, f"error: {err}\n")
    print(root)


if __name__ == "__main__":
    main()
