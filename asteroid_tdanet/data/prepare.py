"""Stage 1 of the recipes: index a downloaded tree into ``DATA_DIR/{train,valid,test}/``.

Every listed file is checked before anything is written: it exists, is mono, has the expected
sample rate, and the sources are as long as their mixture (headers only, via
`soundfile.info`, so a full LibriMix train set takes seconds). A bad tree stops with one
error that names the first bad file and how many are bad; an empty split names the folder it
looked in. Nothing is written unless all splits are good.

Entry point: ``local/prepare.py --dataset <name>`` (any registered data set) calls `main`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from .index import PreparedIndexError, Utterance, read_librimix_csv, write_index, write_meta
from .layouts import SPLITS, Layout
from .registry import NAMES, get_entry

logger = logging.getLogger(__name__)


class DataPreparationError(ValueError):
    """The tree to prepare is missing, empty or holds bad files."""


def prepare(
    name: str,
    root: str | Path,
    out_dir: str | Path,
    *,
    sample_rate: int | None = None,
    mode: str = "min",
    task: str = "sep_clean",
    n_src: int = 2,
    progress: bool = True,
) -> dict:
    """Check the tree of data set `name` under `root` and write its index under `out_dir`.

    Args:
        name: Registered data set name (`asteroid_tdanet.data.registry.NAMES`).
        root: Download root (``--root`` of the download step) or the data set's top folder.
        out_dir: Where ``train/``, ``valid/``, ``test/`` and ``dataset.json`` are written.
        sample_rate: Expected sample rate in Hz; selects the ``wav{k}k`` folder. Defaults to
            the data set's (8000 for LibriMix and WHAM!, 16000 for LRS2-2Mix).
        mode: "min" or "max" (LibriMix/WHAM! truncation style folder).
        task: "sep_clean" (mixture of the clean sources) or "sep_noisy" (with noise).
        n_src: Number of sources.
        progress: Show tqdm progress bars.

    Returns:
        The metadata written to ``out_dir/dataset.json`` (format, task, counts per split...).

    Raises:
        DataPreparationError: missing tree, empty split or bad files (named in the message).
    """
    entry = get_entry(name)
    layout = entry.layout
    sample_rate = int(sample_rate or layout.default_sample_rate)
    layout.check_task(task, entry.title)
    layout.check_sample_rate(sample_rate, entry.title)
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    if n_src < 1:
        raise ValueError(f"n_src must be >= 1, not {n_src}")
    root = Path(root)
    data_root = layout.data_root(root, sample_rate, mode, n_src)
    if not data_root.is_dir():
        raise DataPreparationError(
            f"{entry.title} not found under {root}: expected the folder {data_root}. "
            f"Is --root right, and did the download step ({entry.download_script}) finish?"
        )
    start = time.time()
    collected = {}
    for split in SPLITS:
        split_dir = layout.split_dir(root, split, sample_rate, mode, n_src)
        utterances, origin = collect_split(layout, split_dir, task=task, n_src=n_src)
        if not utterances:
            raise DataPreparationError(
                f"split '{split}' of {entry.title} is empty: no mixtures found in {origin}"
            )
        logger.info("%s: %d mixtures listed in %s", split, len(utterances), origin)
        utterances, problems = check_utterances(
            utterances, sample_rate, desc=f"checking {split}", progress=progress
        )
        if problems:
            for path, reason in problems[:10]:
                logger.error("bad file %s: %s", path, reason)
            path, reason = problems[0]
            raise DataPreparationError(
                f"{len(problems)} bad file(s) in split '{split}' ({split_dir}); the first is "
                f"{path}: {reason}"
            )
        collected[split] = (split_dir, utterances)

    out_dir = Path(out_dir)
    counts, hours = {}, {}
    for split, (split_dir, utterances) in collected.items():
        write_index(layout, out_dir / split, utterances, task, split_dir.name)
        counts[split] = len(utterances)
        hours[split] = round(sum(u.length for u in utterances) / sample_rate / 3600, 3)
    meta = {
        "format": entry.name,
        "dataset": entry.title,
        "task": task,
        "sample_rate": sample_rate,
        "mode": mode,
        "n_src": n_src,
        "root": os.path.abspath(root),
        "counts": counts,
        "hours": hours,
    }
    write_meta(out_dir, meta)
    logger.info(
        "prepared %s in %s (%.1f s): %s",
        entry.title,
        out_dir,
        time.time() - start,
        ", ".join(f"{s} {counts[s]} ({hours[s]} h)" for s in counts),
    )
    return meta


def collect_split(
    layout: Layout, split_dir: Path, *, task: str, n_src: int
) -> tuple[list[Utterance], str]:
    """List the mixtures of one split folder (lengths filled in by `check_utterances`).

    LibriMix splits are read from LibriMix's metadata CSV when it exists (paths in it are
    absolute paths of the machine that generated the data, so they are re-rooted under
    `split_dir`); otherwise, and for WHAM!/LRS2-2Mix, the mixture folder is listed and each
    mixture is paired with the same file name in ``s1/``, ``s2/``...

    Returns:
        The utterances (sorted by id) and a description of where they were looked for.
    """
    mixture_dir = layout.mixture_dirs[task]
    noisy = task == "sep_noisy"
    if layout.csv_metadata:
        csv_path = split_dir.parent / "metadata" / f"mixture_{split_dir.name}_{mixture_dir}.csv"
        if csv_path.is_file():
            return _from_librimix_csv(csv_path, split_dir, n_src, noisy), str(csv_path)
        logger.info("no LibriMix metadata %s: listing %s instead", csv_path, split_dir)
    folder = split_dir / mixture_dir
    if not folder.is_dir():
        return [], f"{folder} (folder missing)"
    utterances = []
    for wav in sorted(folder.glob("*.wav")):
        sources = tuple(
            os.path.abspath(split_dir / s / wav.name) for s in layout.source_dirs(n_src)
        )
        noise = split_dir / "noise" / wav.name
        utterances.append(
            Utterance(
                id=wav.stem,
                mixture=os.path.abspath(wav),
                sources=sources,
                length=-1,
                noise=os.path.abspath(noise) if noisy and noise.parent.is_dir() else None,
            )
        )
    return utterances, str(folder)


def _rebase(listed: str, split_dir: Path) -> str:
    # ".../<split>/<folder>/<file>.wav" from another machine -> split_dir/<folder>/<file>.wav.
    # The copy under ROOT wins when both exist: ROOT is the tree we were asked to index.
    path = Path(listed)
    local = split_dir / path.parent.name / path.name
    if local.exists() or not path.exists():
        return os.path.abspath(local)
    return os.path.abspath(path)


def _from_librimix_csv(csv_path: Path, split_dir: Path, n_src: int, noisy: bool) -> list[Utterance]:
    try:
        listed = read_librimix_csv(csv_path, n_src, require_noise=noisy)
    except PreparedIndexError as err:
        raise DataPreparationError(str(err)) from None
    utterances = [
        Utterance(
            id=u.id,
            mixture=_rebase(u.mixture, split_dir),
            sources=tuple(_rebase(p, split_dir) for p in u.sources),
            length=u.length,
            noise=_rebase(u.noise, split_dir) if noisy and u.noise else None,
        )
        for u in listed
    ]
    return sorted(utterances, key=lambda u: u.id)


def _header_problem(path: str, sample_rate: int) -> tuple[int | None, str | None]:
    """Frames of a wav and the problem with it, if any (missing, unreadable, rate, channels)."""
    if not os.path.isfile(path):
        return None, "missing"
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError) as err:
        return None, f"unreadable ({err})"
    if info.samplerate != sample_rate:
        return info.frames, f"sample rate {info.samplerate} Hz, expected {sample_rate} Hz"
    if info.channels != 1:
        return info.frames, f"{info.channels} channels, expected mono"
    return info.frames, None


def check_utterances(
    utterances: list[Utterance], sample_rate: int, *, desc: str = "checking", progress: bool = True
) -> tuple[list[Utterance], list[tuple[str, str]]]:
    """Check every file of `utterances` from its header.

    Returns:
        The utterances with their length set to the mixture's frame count, and the list of
        ``(path, reason)`` problems found (empty when all is well).
    """
    checked, problems = [], []
    for u in tqdm(utterances, desc=desc, unit="mix", disable=not progress, leave=False):
        frames, problem = _header_problem(u.mixture, sample_rate)
        if problem:
            problems.append((u.mixture, problem))
        elif u.length >= 0 and frames != u.length:
            problems.append((u.mixture, f"{frames} samples but the metadata says {u.length}"))
        others = list(u.sources) + ([u.noise] if u.noise else [])
        for path in others:
            src_frames, src_problem = _header_problem(path, sample_rate)
            if src_problem:
                problems.append((path, src_problem))
            elif frames is not None and src_frames != frames:
                problems.append(
                    (path, f"{src_frames} samples but its mixture {u.mixture} has {frames}")
                )
        checked.append(
            Utterance(u.id, u.mixture, u.sources, frames if frames is not None else -1, u.noise)
        )
    return checked, problems


def main(argv: list[str] | None, name: str | None = None) -> int:
    """Command line of ``local/prepare.py``; returns the exit code.

    Args:
        argv: Arguments (``--dataset NAME --root ROOT --out DATA_DIR ...``).
        name: Data set to prepare; None reads it from ``--dataset``.
    """
    parser = argparse.ArgumentParser(
        description="Stage 1: index a downloaded data set under ROOT into "
        "OUT/{train,valid,test}/ after checking every file.",
    )
    if name is None:
        parser.add_argument("--dataset", required=True, choices=list(NAMES))
    parser.add_argument("--root", required=True, help="download root (see local/download_*.sh)")
    parser.add_argument("--out", required=True, help="data dir to write the index into")
    parser.add_argument(
        "--sample_rate",
        type=int,
        default=None,
        help="expected sample rate in Hz (default: the data set's, 8000 or 16000)",
    )
    parser.add_argument("--mode", default="min", choices=["min", "max"])
    parser.add_argument("--task", default="sep_clean", choices=["sep_clean", "sep_noisy"])
    parser.add_argument("--n_src", type=int, default=2)
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--espnet_dir",
        default=None,
        help="also write ESPnet's Kaldi-style folders (wav.scp, spk1.scp, ...) into ESPNET_DIR, "
        "named as the data set's ESPnet recipe names them (see asteroid_tdanet.data.kaldi)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        prepare(
            name or args.dataset,
            args.root,
            args.out,
            sample_rate=args.sample_rate,
            mode=args.mode,
            task=args.task,
            n_src=args.n_src,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
        if args.espnet_dir:
            from .kaldi import write_kaldi_dirs

            folders = write_kaldi_dirs(args.out, args.espnet_dir)
            logger.info("ESPnet data folders: %s", ", ".join(str(f) for f in folders.values()))
    except (DataPreparationError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
