"""ESPnet's Kaldi-style data folders for a prepared data set, for ESPnet's egs2/*/enh1 recipes.

For each split, one folder with (one line per mixture, sorted by utterance id in byte order, as
Kaldi's ``utils/validate_data_dir.sh`` requires)::

    wav.scp      <utt-id> <mixture wav>
    spk1.scp     <utt-id> <source 1 wav>        (spk2.scp, ... one per source)
    noise1.scp   <utt-id> <noise wav>           (noisy tasks only: ESPnet's --use_noise_ref)
    utt2spk      <utt-id> <utt-id>              (each mixture is its own "speaker", as
    spk2utt      <utt-id> <utt-id>               ESPnet's LibriMix data.sh writes them)

Split folders are named as ESPnet's LibriMix recipe names them: ``train``, ``dev``, ``test``.
The paths are the absolute paths of our prepared index (``local/prepare_<name>.py``), so the
audio is never copied.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from .index import Utterance, read_index, read_meta
from .layouts import SPLITS, get_layout

# Our split name -> ESPnet's (egs2/librimix/enh1/run.sh: train_set, valid_set, test_sets).
ESPNET_SPLITS = {"train": "train", "valid": "dev", "test": "test"}


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


def write_kaldi_split(utterances: list[Utterance], out_dir: str | Path) -> list[Path]:
    """Write one split's Kaldi-style folder (see the module doc).

    Args:
        utterances: The split's mixtures.
        out_dir: The folder to write (created).

    Returns:
        The files written.

    Raises:
        ValueError: Empty split, duplicate ids, ids or paths with whitespace, or mixtures with
            different numbers of sources.
    """
    if not utterances:
        raise ValueError(f"no mixtures to write into {out_dir}")
    n_src = len(utterances[0].sources)
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
    files["utt2spk"] = [(u.id, u.id) for u in ordered]
    files["spk2utt"] = [(u.id, u.id) for u in ordered]
    written = []
    for name, rows in files.items():
        _write_lines(out_dir / name, rows)
        written.append(out_dir / name)
    return written


def write_kaldi_dirs(
    data_dir: str | Path, out_dir: str | Path, split_names: Mapping[str, str] = ESPNET_SPLITS
) -> dict[str, Path]:
    """Kaldi-style folders for every split of a prepared data dir.

    Args:
        data_dir: The ``--out`` folder of the prepare step (with ``dataset.json``).
        out_dir: Where the split folders go, e.g. ``<espnet>/egs2/librimix/enh1/data``.
        split_names: Our split name -> folder name (default ESPnet LibriMix's).

    Returns:
        Our split name -> the folder written.
    """
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    if meta is None:
        raise FileNotFoundError(f"{data_dir} has no dataset.json: run the prepare step first")
    layout = get_layout(meta["format"])
    folders = {}
    for split in SPLITS:
        utterances = read_index(layout, data_dir / split, meta["task"], int(meta["n_src"]))
        folder = Path(out_dir) / split_names[split]
        write_kaldi_split(utterances, folder)
        folders[split] = folder
    return folders
