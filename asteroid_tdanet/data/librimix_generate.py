"""Libri2Mix ``mix_clean`` from LibriSpeech and LibriMix's metadata, without WHAM! noise.

LibriMix's ``create_librimix_from_metadata.py`` reads the WHAM! noise file of every row, even
for ``mix_clean`` (17 GB to download for nothing). For clean separation the noise plays no
part: in ``min`` mode the noise is stretched to the longest source, so it never sets the
length. This module follows the same procedure for the speech only:

1. read each LibriSpeech source (16 kHz) and multiply it by its ``source_i_gain`` (the
   loudness normalisation LibriMix drew when it made the metadata),
2. resample to the target rate with `scipy.signal.resample_poly`,
3. ``min``: cut every source to the shortest; ``max``: zero-pad to the longest,
4. the mixture is the sum of the sources; all written as 16-bit PCM wav,

and writes LibriMix's layout ``OUT/wav8k/min/<split>/{mix_clean,s1,s2}/<mixture_ID>.wav``
plus ``OUT/wav8k/min/metadata/mixture_<split>_mix_clean.csv``. Files already written are kept,
so an interrupted run resumes where it stopped.

Run: ``python -m asteroid_tdanet.data.librimix_generate --librispeech_dir D --metadata_dir M
--out_dir ROOT/Libri2Mix``. ``local/download_librimix.sh`` runs this file by path: it imports
nothing from the package (no torch), so keep it self-contained.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

logger = logging.getLogger(__name__)

LIBRISPEECH_RATE = 16000
# LibriSpeech subset -> LibriMix split folder (LibriMix strips "libri2mix_" and "-clean").
DEFAULT_SUBSETS = ("train-clean-100", "dev-clean", "test-clean")


def split_name(subset: str) -> str:
    """LibriMix's folder name of a LibriSpeech subset: ``train-clean-100`` -> ``train-100``."""
    return subset.replace("-clean", "")


def read_metadata(csv_path: Path, n_src: int) -> list[dict]:
    """Rows of a LibriMix metadata file (``libri2mix_<subset>.csv``), checked for columns."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        needed = ["mixture_ID"]
        needed += [f"source_{i + 1}_{c}" for i in range(n_src) for c in ("path", "gain")]
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path} lacks column(s) {missing} (n_src={n_src})")
        return list(reader)


def mix_sources(
    sources: list[np.ndarray], gains: list[float], sample_rate: int, mode: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scale, resample, align and sum LibriSpeech sources (the LibriMix procedure).

    Args:
        sources: 1-D arrays at 16 kHz.
        gains: One gain per source.
        sample_rate: Output rate in Hz.
        mode: "min" (cut to the shortest) or "max" (zero-pad to the longest).

    Returns:
        ``(mixture, sources)``: float64 arrays of equal length at `sample_rate`.
    """
    scaled = [
        resample_poly(np.asarray(s, dtype=np.float64) * g, sample_rate, LIBRISPEECH_RATE)
        for s, g in zip(sources, gains, strict=True)
    ]
    if mode == "min":
        length = min(len(s) for s in scaled)
        aligned = [s[:length] for s in scaled]
    elif mode == "max":
        length = max(len(s) for s in scaled)
        aligned = [np.pad(s, (0, length - len(s))) for s in scaled]
    else:
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    mixture = np.zeros(length)
    for s in aligned:
        mixture += s
    return mixture, aligned


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    # Written under a temporary name then renamed: a killed run never leaves a short wav.
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak >= 1.0:
        # LibriMix's gains avoid clipping; if one still clips, clip rather than wrap around.
        logger.warning("%s peaks at %.3f: clipped to [-1, 1]", path, peak)
        audio = np.clip(audio, -1.0, 1.0 - 2**-15)
    tmp = path.with_name(f".{path.name}.partial")
    sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def make_mixture(
    row: dict,
    *,
    librispeech_dir: Path,
    split_dir: Path,
    sample_rate: int,
    mode: str,
    n_src: int,
) -> tuple[str, str, list[str], int]:
    """Write one mixture and its sources (skipped when already there).

    Returns:
        ``(mixture_ID, mixture_path, source_paths, length)`` for the metadata CSV.
    """
    mix_id = row["mixture_ID"]
    name = f"{mix_id}.wav"
    mix_path = split_dir / "mix_clean" / name
    src_paths = [split_dir / f"s{i + 1}" / name for i in range(n_src)]
    if mix_path.is_file() and all(p.is_file() for p in src_paths):
        length = sf.info(mix_path).frames
    else:
        sources, gains = [], []
        for i in range(n_src):
            path = librispeech_dir / row[f"source_{i + 1}_path"]
            if not path.is_file():
                raise FileNotFoundError(f"LibriSpeech file {path} (mixture {mix_id}) is missing")
            audio, rate = sf.read(path, dtype="float32")
            if rate != LIBRISPEECH_RATE:
                raise ValueError(f"{path} has sample rate {rate} Hz, LibriSpeech is 16000 Hz")
            if audio.ndim != 1:
                raise ValueError(f"{path} is not mono")
            sources.append(audio)
            gains.append(float(row[f"source_{i + 1}_gain"]))
        mixture, aligned = mix_sources(sources, gains, sample_rate, mode)
        for path, audio in zip(src_paths, aligned, strict=True):
            _write_wav(path, audio, sample_rate)
        _write_wav(mix_path, mixture, sample_rate)  # last: its presence marks "done"
        length = len(mixture)
    return mix_id, os.path.abspath(mix_path), [os.path.abspath(p) for p in src_paths], length


def generate_split(
    metadata_csv: Path,
    librispeech_dir: Path,
    out_dir: Path,
    *,
    sample_rate: int = 8000,
    mode: str = "min",
    n_src: int = 2,
    nj: int = 1,
    progress: bool = True,
) -> Path:
    """Generate one split from ``libri{n}mix_<subset>.csv``; returns its mixture CSV.

    Args:
        metadata_csv: LibriMix metadata file, e.g. ``metadata/Libri2Mix/libri2mix_dev-clean.csv``.
        librispeech_dir: Folder holding ``train-clean-100/``, ``dev-clean/``... (``LibriSpeech``).
        out_dir: The ``Libri{n}Mix`` folder to write into.
        sample_rate: Output rate in Hz (8000 or 16000).
        mode: "min" or "max".
        n_src: Number of sources per mixture.
        nj: Parallel worker processes.
        progress: Show a progress bar.
    """
    metadata_csv = Path(metadata_csv)
    subset = metadata_csv.stem.replace(f"libri{n_src}mix_", "")
    split = split_name(subset)
    mode_dir = Path(out_dir) / f"wav{sample_rate // 1000}k" / mode
    split_dir = mode_dir / split
    for sub in ["mix_clean"] + [f"s{i + 1}" for i in range(n_src)]:
        (split_dir / sub).mkdir(parents=True, exist_ok=True)
    rows = read_metadata(metadata_csv, n_src)
    work = partial(
        make_mixture,
        librispeech_dir=Path(librispeech_dir),
        split_dir=split_dir,
        sample_rate=sample_rate,
        mode=mode,
        n_src=n_src,
    )
    bar = partial(tqdm, total=len(rows), desc=f"Libri{n_src}Mix {split}", unit="mix")
    if nj > 1:
        with ProcessPoolExecutor(nj) as pool:
            results = list(bar(pool.map(work, rows, chunksize=16), disable=not progress))
    else:
        results = [work(row) for row in bar(rows, disable=not progress)]
    out_csv = mode_dir / "metadata" / f"mixture_{split}_mix_clean.csv"
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(f".{out_csv.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["mixture_ID", "mixture_path"]
            + [f"source_{i + 1}_path" for i in range(n_src)]
            + ["length"]
        )
        for mix_id, mix_path, src_paths, length in results:
            writer.writerow([mix_id, mix_path, *src_paths, length])
    os.replace(tmp, out_csv)
    logger.info("%s: %d mixtures in %s", split, len(results), split_dir)
    return out_csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--librispeech_dir", required=True, type=Path)
    parser.add_argument("--metadata_dir", required=True, type=Path, help="metadata/Libri2Mix")
    parser.add_argument("--out_dir", required=True, type=Path, help="e.g. ROOT/Libri2Mix")
    parser.add_argument("--subsets", nargs="+", default=list(DEFAULT_SUBSETS))
    parser.add_argument("--sample_rate", type=int, default=8000, choices=[8000, 16000])
    parser.add_argument("--mode", default="min", choices=["min", "max"])
    parser.add_argument("--n_src", type=int, default=2)
    parser.add_argument("--nj", type=int, default=1, help="parallel processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        for subset in args.subsets:
            csv_path = args.metadata_dir / f"libri{args.n_src}mix_{subset}.csv"
            if not csv_path.is_file():
                raise FileNotFoundError(f"LibriMix metadata {csv_path} is missing")
            generate_split(
                csv_path,
                args.librispeech_dir,
                args.out_dir,
                sample_rate=args.sample_rate,
                mode=args.mode,
                n_src=args.n_src,
                nj=args.nj,
                progress=sys.stderr.isatty(),
            )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
