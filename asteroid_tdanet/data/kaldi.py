"""ESPnet's Kaldi-style data folders for a prepared data set, for ESPnet's egs2/*/enh1 recipes.

For each split, one folder with (one line per mixture, sorted by utterance id in byte order, as
Kaldi's ``utils/validate_data_dir.sh`` requires)::

    wav.scp      <utt-id> <mixture wav>
    spk1.scp     <utt-id> <source 1 wav>        (spk2.scp, ... one per source)
    noise1.scp   <utt-id> <noise wav>           (noisy tasks only: ESPnet's --use_noise_ref)
    utt2spk      <utt-id> <speaker-id>
    spk2utt      <speaker-id> <utt-id> ...

Folder names, utterance ids and speakers follow the ESPnet recipe of each data set
(:data:`ESPNET_NAMING`):

- LibriMix (``egs2/librimix/enh1/local/data.sh``): ``train``, ``dev``, ``test``; the id is
  LibriMix's ``mixture_ID`` and each mixture is its own speaker.
- WHAM! (``egs2/wham/enh1/local/wham_data_prep.sh``): ``{tr,cv,tt}_mix_{clean,both}_<min|max>_<8k|
  16k>``; the id is ``<first 3 characters of each WSJ0 utterance>_<file name>`` (``011_20o_011a0101
  _0.06_20oc0205_-0.06``) and the speaker is its first two fields (``011_20o``).
- LRS2-2Mix and the demo's mini2mix (no ESPnet recipe): ``train``, ``dev``, ``test``, one speaker
  per mixture (LRS2 names videos, not speakers).

The paths are the absolute paths of our prepared index (``local/prepare.py``), so the audio is
never copied.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .index import Utterance, read_index, read_meta
from .layouts import SPLITS, get_layout

# Our split name -> ESPnet's (egs2/librimix/enh1/run.sh: train_set, valid_set, test_sets).
ESPNET_SPLITS = {"train": "train", "valid": "dev", "test": "test"}
# Our task -> the WHAM! mixture type in ESPnet's folder names.
WHAM_MIX_TYPES = {"sep_clean": "clean", "sep_noisy": "both"}


def _own_speaker(utt_id: str) -> str:
    return utt_id


def _wham_utt_id(utterance: Utterance) -> str:
    # <utt1>_<snr1>_<utt2>_<snr2>: the speakers are the first 3 characters of each WSJ0 utterance.
    fields = utterance.id.split("_")
    if len(fields) < 4 or not fields[0] or not fields[2]:
        raise ValueError(
            f"WHAM! mixture {utterance.mixture} is not named <utt1>_<snr1>_<utt2>_<snr2>.wav, so "
            "ESPnet's WHAM! speaker ids cannot be derived from it"
        )
    return f"{fields[0][:3]}_{fields[2][:3]}_{utterance.id}"


def _wham_speaker(utt_id: str) -> str:
    return "_".join(utt_id.split("_")[:2])


def _wham_split_names(task: str, sample_rate: int, mode: str) -> dict[str, str]:
    suffix = f"mix_{WHAM_MIX_TYPES[task]}_{mode}_{sample_rate // 1000}k"
    return {"train": f"tr_{suffix}", "valid": f"cv_{suffix}", "test": f"tt_{suffix}"}


@dataclass(frozen=True)
class EspnetNaming:
    """How an ESPnet recipe names one data set's folders, utterances and speakers.

    Args:
        split_names: (task, sample rate in Hz, "min"/"max") -> our split -> folder name.
        utt_id: Our utterance -> ESPnet's utterance id.
        speaker: ESPnet's utterance id -> its speaker id (a prefix of it, as Kaldi wants).
    """

    split_names: Callable[[str, int, str], dict[str, str]]
    utt_id: Callable[[Utterance], str]
    speaker: Callable[[str], str]


_PLAIN = EspnetNaming(lambda task, sr, mode: dict(ESPNET_SPLITS), lambda u: u.id, _own_speaker)
ESPNET_NAMING = {
    "librimix": _PLAIN,
    "wham": EspnetNaming(_wham_split_names, _wham_utt_id, _wham_speaker),
    "lrs2_2mix": _PLAIN,
    "mini2mix": _PLAIN,
}


def espnet_split_names(dataset: str, task: str, sample_rate: int, mode: str) -> dict[str, str]:
    """ESPnet's data folder names for `dataset`: our split ("train", "valid", "test") -> name."""
    return ESPNET_NAMING[dataset].split_names(task, int(sample_rate), mode)


def _check_token(text: str, what: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError(
            f"{what} {text!r} is empty or contains whitespace, which Kaldi-style files cannot "
            "hold (one '<id> <path>' per line): rename it or move the data"
        )
    return text


def _write_lines(path: Path, rows: list[tuple[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{key} {value}\n" for key, value in rows), encoding="utf-8")
    os.replace(tmp, path)  # an interrupted run never leaves half a file


def write_kaldi_split(
    utterances: list[Utterance], out_dir: str | Path, naming: EspnetNaming = _PLAIN
) -> list[Path]:
    """Write one split's Kaldi-style folder (see the module doc).

    Args:
        utterances: The split's mixtures.
        out_dir: The folder to write (created).
        naming: Utterance and speaker ids (default: our ids, one speaker per mixture).

    Returns:
        The files written.

    Raises:
        ValueError: Empty split, duplicate ids, ids or paths with whitespace, or mixtures with
            different numbers of sources.
    """
    if not utterances:
        raise ValueError(f"no mixtures to write into {out_dir}")
    n_src = len(utterances[0].sources)
    utterances = [dataclasses.replace(u, id=naming.utt_id(u)) for u in utterances]
    ids = [_check_token(u.id, "utterance id") for u in utterances]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate utterance ids {duplicates[:5]}: Kaldi ids must be unique")
    ordered = sorted(utterances, key=lambda u: u.id.encode("utf-8"))
    for u in ordered:
        if len(u.sources) != n_src:
            raise ValueError(f"mixture {u.id} has {len(u.sources)} sources, others {n_src}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[tuple[str, str]]] = {
        "wav.scp": [(u.id, _check_token(u.mixture, "path")) for u in ordered]
    }
    for k in range(n_src):
        files[f"spk{k + 1}.scp"] = [(u.id, _check_token(u.sources[k], "path")) for u in ordered]
    if all(u.noise for u in ordered):
        files["noise1.scp"] = [(u.id, _check_token(u.noise, "path")) for u in ordered]
    files["utt2spk"] = [(u.id, naming.speaker(u.id)) for u in ordered]
    by_speaker = defaultdict(list)
    for uid, speaker in files["utt2spk"]:
        by_speaker[speaker].append(uid)
    files["spk2utt"] = [
        (speaker, " ".join(by_speaker[speaker]))
        for speaker in sorted(by_speaker, key=lambda spk: spk.encode("utf-8"))
    ]
    written = []
    for name, rows in files.items():
        _write_lines(out_dir / name, rows)
        written.append(out_dir / name)
    return written


def write_kaldi_dirs(
    data_dir: str | Path, out_dir: str | Path, split_names: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """Kaldi-style folders for every split of a prepared data dir, named as ESPnet names them.

    Args:
        data_dir: The ``--out`` folder of the prepare step (with ``dataset.json``).
        out_dir: Where the split folders go, e.g. ``<espnet>/egs2/librimix/enh1_tdanet/data``.
        split_names: Our split name -> folder name (default: the data set's ESPnet recipe's,
            :func:`espnet_split_names`).

    Returns:
        Our split name -> the folder written.
    """
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    if meta is None:
        raise FileNotFoundError(f"{data_dir} has no dataset.json: run the prepare step first")
    layout = get_layout(meta["format"])
    naming = ESPNET_NAMING[meta["format"]]
    if split_names is None:
        split_names = espnet_split_names(
            meta["format"], meta["task"], meta["sample_rate"], meta["mode"]
        )
    folders = {}
    for split in SPLITS:
        utterances = read_index(layout, data_dir / split, meta["task"], int(meta["n_src"]))
        folder = Path(out_dir) / split_names[split]
        write_kaldi_split(utterances, folder, naming)
        folders[split] = folder
    return folders


def _sample_rate(text: str) -> int:
    """ "8k", "16k" (ESPnet's --fs style) or "8000" -> Hz."""
    text = text.strip().lower()
    try:
        return int(float(text[:-1]) * 1000) if text.endswith("k") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sample rate {text!r}: use 8k, 16k or Hz") from None


def main(argv: list[str] | None = None) -> int:
    """``python -m asteroid_tdanet.data.kaldi``: ESPnet's stage 1 (``local/data.sh``) for TDANet.

    Checks and indexes the data set under ``--root`` (the recipes' prepare step, into
    ``--index_dir``), then writes its Kaldi-style folders into ``--data`` with the names of the
    data set's ESPnet recipe, and prints them as ``enh.sh`` options.
    """
    from .prepare import DataPreparationError, prepare
    from .registry import NAMES

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, choices=list(NAMES))
    parser.add_argument("--root", required=True, help="the data set's download root")
    parser.add_argument("--data", default="data", help="ESPnet's data folder (default: data)")
    parser.add_argument(
        "--index_dir", default=None, help="our index (default: DATA/local/tdanet_<dataset>)"
    )
    parser.add_argument("--sample_rate", type=_sample_rate, default=None, help="8k or 16k")
    parser.add_argument("--min_or_max", default="min", choices=["min", "max"])
    parser.add_argument("--task", default="sep_clean", choices=["sep_clean", "sep_noisy"])
    parser.add_argument("--n_src", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.root:
        parser.error(f"--root is empty: point it at the {args.dataset} download")
    index_dir = args.index_dir or str(Path(args.data) / "local" / f"tdanet_{args.dataset}")
    try:
        prepare(
            args.dataset,
            args.root,
            index_dir,
            sample_rate=args.sample_rate,
            mode=args.min_or_max,
            task=args.task,
            n_src=args.n_src,
            progress=sys.stderr.isatty(),
        )
        folders = write_kaldi_dirs(index_dir, args.data)
    except (DataPreparationError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    names = {split: folder.name for split, folder in folders.items()}
    print(f"--train_set {names['train']} --valid_set {names['valid']} --test_sets {names['test']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
