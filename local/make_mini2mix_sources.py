#!/usr/bin/env python3
"""Synthesise the speech sources of the offline mini2mix demo set.

Run once by a maintainer (through ``local/make_mini2mix_sources.sh``); its output is committed
under ``egs/mini2mix/sources/`` so that the demo needs neither network nor system packages.

Inputs, both in the sources folder and written by hand:
    speakers.tsv   one row per speaker: engine (flite or espeak-ng), voice, extra engine
                   arguments, optional sox effects (pitch/tempo), split and utterance count.
    sentences.txt  one sentence per line, our own text. Line ``n`` (1-based) belongs to the
                   dev split when ``(n - 1) % 10 == 8``, to test when it is 9, to train otherwise,
                   so train and test never share a sentence.

Outputs, in ``--out`` (the sources folder by default):
    <speaker_id>/<utterance_id>.flac   16 kHz, mono, 16-bit FLAC
    utterances.tsv                     utterance_id, speaker_id, split, sentence_id, path,
                                       num_samples, text
    tools.txt                          the versions that produced the audio
    licenses/                          the Debian copyright files of flite and espeak-ng, verbatim

Each utterance: TTS -> sox (headroom, optional pitch/tempo, resampling to 16 kHz, 32-bit float)
-> leading/trailing silence trimmed -> peak normalised to -1 dBFS -> rounded to int16 -> FLAC
through libsndfile. No dither and sox's repeatable mode, so two runs with the same tool versions
give identical bytes (FLAC stores no timestamp).

Needs the Debian packages flite, espeak-ng and sox, and numpy, soundfile, tqdm in Python.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

SAMPLE_RATE = 16000
PEAK_DBFS = -6.0
# Silence trimming: samples below this level relative to the peak count as silence.
TRIM_REL_DB = -45.0
# Margin kept around the trimmed speech so onsets and releases are not cut.
TRIM_MARGIN_S = 0.05
FLAC_COMPRESSION = 1.0  # libsndfile's scale: 1.0 is FLAC level 8, the smallest files.
SPLITS = ("train", "dev", "test")
REQUIRED_TOOLS = {"flite": "flite", "espeak-ng": "espeak-ng", "sox": "sox"}
LICENSE_FILES = {
    "flite.copyright": Path("/usr/share/doc/flite/copyright"),
    "espeak-ng.copyright": Path("/usr/share/doc/espeak-ng-data/copyright"),
}
SPEAKER_COLUMNS = [
    "speaker_id",
    "sex",
    "split",
    "engine",
    "voice",
    "engine_args",
    "sox_effects",
    "n_utts",
]


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: a TTS voice plus optional sox effects."""

    speaker_id: str
    sex: str
    split: str
    engine: str
    voice: str
    engine_args: tuple[str, ...]
    sox_effects: tuple[str, ...]
    n_utts: int


def sentence_split(sentence_id: int) -> str:
    """Split of a sentence from its 1-based line number (fixed rule, no randomness)."""
    rest = (sentence_id - 1) % 10
    return "dev" if rest == 8 else "test" if rest == 9 else "train"


def _optional_args(field: str) -> tuple[str, ...]:
    return () if field.strip() in ("", "-") else tuple(shlex.split(field))


def read_speakers(path: Path) -> list[Speaker]:
    """Parse and check ``speakers.tsv``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames != SPEAKER_COLUMNS:
            raise ValueError(f"{path}: columns must be {SPEAKER_COLUMNS}, got {reader.fieldnames}")
        speakers = []
        for line, row in enumerate(reader, start=2):
            sid = row["speaker_id"]
            if not sid or "_" in sid or "." in sid or "/" in sid:
                # LibriMix mixture IDs join utterance IDs with "_".
                raise ValueError(f"{path}:{line}: speaker_id {sid!r} must not contain _ . or /")
            if row["split"] not in SPLITS:
                raise ValueError(f"{path}:{line}: split {row['split']!r} not in {SPLITS}")
            if row["engine"] not in ("flite", "espeak-ng"):
                raise ValueError(f"{path}:{line}: engine {row['engine']!r} unknown")
            speakers.append(
                Speaker(
                    speaker_id=sid,
                    sex=row["sex"],
                    split=row["split"],
                    engine=row["engine"],
                    voice=row["voice"],
                    engine_args=_optional_args(row["engine_args"]),
                    sox_effects=_optional_args(row["sox_effects"]),
                    n_utts=int(row["n_utts"]),
                )
            )
    ids = [s.speaker_id for s in speakers]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate speaker_id")
    return speakers


def read_sentences(path: Path) -> list[str]:
    """Sentences, one per line; line numbers are the sentence IDs."""
    sentences = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    for i, text in enumerate(sentences, start=1):
        if not text:
            raise ValueError(f"{path}:{i}: empty line (line numbers are sentence IDs)")
        if "\t" in text:
            raise ValueError(f"{path}:{i}: tab in sentence")
    return sentences


def assign_sentences(
    speakers: list[Speaker], sentences: list[str]
) -> list[tuple[Speaker, int, str]]:
    """Give each speaker the next ``n_utts`` sentences of its split's pool, in roster order.

    Returns:
        (speaker, sentence_id, text) for every utterance to synthesise.
    """
    pools = {split: [] for split in SPLITS}
    for sentence_id, text in enumerate(sentences, start=1):
        pools[sentence_split(sentence_id)].append((sentence_id, text))
    cursor = dict.fromkeys(SPLITS, 0)
    jobs = []
    for spk in speakers:
        pool = pools[spk.split]
        if not pool:
            raise ValueError(f"no sentence for split {spk.split!r}")
        for _ in range(spk.n_utts):
            sentence_id, text = pool[cursor[spk.split] % len(pool)]
            cursor[spk.split] += 1
            jobs.append((spk, sentence_id, text))
    for split in SPLITS:
        if cursor[split] > len(pools[split]):
            print(
                f"warning: {split} needs {cursor[split]} utterances but has "
                f"{len(pools[split])} sentences; some sentences are spoken twice",
                file=sys.stderr,
            )
    return jobs


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"command failed ({result.returncode}): {shlex.join(cmd)}\n{result.stderr}"
        )


def synthesise(spk: Speaker, text: str, workdir: Path) -> np.ndarray:
    """Speak ``text`` with ``spk``'s voice.

    Returns:
        int16 samples at 16 kHz, shape (time,).
    """
    raw = workdir / "raw.wav"
    processed = workdir / "processed.wav"
    if spk.engine == "flite":
        _run(["flite", "-voice", spk.voice, *spk.engine_args, "-t", text, "-o", str(raw)])
    else:
        _run(["espeak-ng", "-v", spk.voice, *spk.engine_args, "-w", str(raw), text])
    # -R: repeatable (fixed seeds), -D: no dither; float output so nothing clips before our
    # own normalisation; 6 dB of headroom keeps sox's integer effect chain from clipping.
    _run(
        ["sox", "-R", "-D", "-V1", str(raw), "-e", "floating-point", "-b", "32", str(processed)]
        + ["gain", "-6", *spk.sox_effects, "rate", "-v", str(SAMPLE_RATE), "channels", "1"]
    )
    audio, rate = sf.read(processed, dtype="float64")
    if rate != SAMPLE_RATE or audio.ndim != 1:
        raise RuntimeError(f"sox gave {rate} Hz, shape {audio.shape} for {spk.speaker_id}")
    peak = np.max(np.abs(audio))
    if peak == 0:
        raise RuntimeError(f"{spk.speaker_id} produced silence for {text!r}")
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (TRIM_REL_DB / 20))
    margin = int(TRIM_MARGIN_S * SAMPLE_RATE)
    audio = audio[max(loud[0] - margin, 0) : loud[-1] + margin + 1]
    audio = audio * (10 ** (PEAK_DBFS / 20) / peak)
    return np.round(audio * 32767).astype(np.int16)


def tool_versions() -> str:
    """One line per tool that shaped the bytes of the FLAC files."""
    lines = []
    for pkg in ("flite", "espeak-ng", "espeak-ng-data", "sox", "libsox3"):
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True
            )
            version = out.stdout.strip() if out.returncode == 0 else "unknown"
        except FileNotFoundError:
            version = "unknown (no dpkg)"
        lines.append(f"{pkg}\t{version}")
    lines.append(f"libsndfile (python-soundfile {sf.__version__})\t{sf.__libsndfile_version__}")
    return "\n".join(lines) + "\n"


def check_tools() -> None:
    """Fail with the package names when a generation tool is missing."""
    missing = [pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"error: missing {', '.join(missing)}; install with "
            f"`apt-get install -y {' '.join(REQUIRED_TOOLS.values())}` (Debian/Ubuntu)"
        )


def generate(roster: Path, sentences_path: Path, out: Path) -> None:
    """Synthesise every utterance of ``roster`` into ``out`` and write the index."""
    check_tools()
    speakers = read_speakers(roster)
    jobs = assign_sentences(speakers, read_sentences(sentences_path))
    out.mkdir(parents=True, exist_ok=True)
    # Start each speaker folder afresh so no stale file survives a roster change.
    wanted = {spk.speaker_id for spk in speakers}
    for child in sorted(out.iterdir()):
        if child.is_dir() and (child.name in wanted or any(child.glob("*.flac"))):
            if any(p.suffix != ".flac" for p in child.iterdir()):
                raise SystemExit(f"error: {child} holds files other than .flac; not removing it")
            shutil.rmtree(child)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spk, sentence_id, text in tqdm(jobs, desc="synthesising", unit="utt"):
            utt_id = f"{spk.speaker_id}-{sentence_id:04d}"
            samples = synthesise(spk, text, Path(tmp))
            rel = Path(spk.speaker_id) / f"{utt_id}.flac"
            (out / spk.speaker_id).mkdir(exist_ok=True)
            sf.write(
                out / rel,
                samples,
                SAMPLE_RATE,
                format="FLAC",
                subtype="PCM_16",
                compression_level=FLAC_COMPRESSION,
            )
            rows.append(
                [utt_id, spk.speaker_id, spk.split, sentence_id, rel.as_posix(), len(samples), text]
            )
    with open(out / "utterances.tsv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(
            ["utterance_id", "speaker_id", "split", "sentence_id", "path", "num_samples", "text"]
        )
        writer.writerows(rows)
    (out / "tools.txt").write_text(tool_versions(), encoding="utf-8")
    # Keep the inputs beside the audio so ``out`` is a complete sources folder.
    for src, name in ((roster, "speakers.tsv"), (sentences_path, "sentences.txt")):
        if not (out / name).exists() or not (out / name).samefile(src):
            shutil.copyfile(src, out / name)
    lic_dir = out / "licenses"
    lic_dir.mkdir(exist_ok=True)
    for name, src in LICENSE_FILES.items():
        if not src.is_file():
            raise SystemExit(f"error: {src} missing; is the Debian package installed?")
        shutil.copyfile(src, lic_dir / name)
    total = sum(r[5] for r in rows) / SAMPLE_RATE
    size = sum(p.stat().st_size for p in out.rglob("*.flac"))
    print(f"{len(rows)} utterances, {len(speakers)} speakers, {total:.0f} s, {size / 1e6:.2f} MB")


def main(argv: list[str] | None = None) -> None:
    default_dir = Path(__file__).resolve().parent.parent / "egs" / "mini2mix" / "sources"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speakers", type=Path, default=default_dir / "speakers.tsv")
    parser.add_argument("--sentences", type=Path, default=default_dir / "sentences.txt")
    parser.add_argument(
        "--out", type=Path, default=default_dir, help="output folder (default: the sources)"
    )
    args = parser.parse_args(argv)
    generate(args.speakers, args.sentences, args.out)


if __name__ == "__main__":
    main()
