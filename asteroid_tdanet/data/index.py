"""Index files of prepared splits: LibriMix CSVs and WHAM-style JSON lists, read and written.

One `Utterance` is one mixture with its sources. The files are the ones Asteroid's own
classes read (`asteroid.data.LibriMix` for CSVs, `asteroid.data.WhamDataset` for JSON), so a
prepared ``DATA_DIR`` also works with plain Asteroid recipes.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .layouts import Layout

META_FILE = "dataset.json"


@dataclass(frozen=True)
class Utterance:
    """One mixture and its reference sources.

    Args:
        id: Utterance id (LibriMix ``mixture_ID``, or the file name without ``.wav``).
        mixture: Path of the mixture wav.
        sources: Paths of the source wavs, in speaker order (s1, s2, ...).
        length: Length of the mixture in samples.
        noise: Path of the noise wav (noisy tasks only), else None.
    """

    id: str
    mixture: str
    sources: tuple[str, ...]
    length: int
    noise: str | None = None


class PreparedIndexError(ValueError):
    """A prepared index is missing or inconsistent."""


def _atomic_write_text(path: Path, text: str) -> None:
    # Write next to the target then rename, so an interrupted run never leaves half a file.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv_name(split_dir_name: str, mixture_dir: str) -> str:
    # LibriMix's own name, e.g. mixture_train-100_mix_clean.csv.
    return f"mixture_{split_dir_name}_{mixture_dir}.csv"


def write_index(
    layout: Layout, out_dir: Path, utterances: list[Utterance], task: str, split_dir_name: str
) -> list[Path]:
    """Write the index of one split into `out_dir` (created); returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_src = len(utterances[0].sources)
    noisy = any(u.noise is not None for u in utterances)
    if layout.index == "csv":
        header = ["mixture_ID", "mixture_path"] + [f"source_{i + 1}_path" for i in range(n_src)]
        header += ["noise_path"] if noisy else []
        header += ["length"]
        rows = []
        for u in utterances:
            row = [u.id, u.mixture, *u.sources] + ([u.noise or ""] if noisy else []) + [u.length]
            rows.append(row)
        path = out_dir / _csv_name(split_dir_name, layout.mixture_index_name(task))
        with open(path.with_name(f".{path.name}.tmp"), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(path.with_name(f".{path.name}.tmp"), path)
        return [path]
    # JSON: one list of [path, length] per folder role, all in the same order.
    lists = {layout.mixture_index_name(task): [[u.mixture, u.length] for u in utterances]}
    for i in range(n_src):
        lists[f"s{i + 1}"] = [[u.sources[i], u.length] for u in utterances]
    if noisy:
        lists["noise"] = [[u.noise, u.length] for u in utterances]
    written = []
    for name, items in lists.items():
        path = out_dir / f"{name}.json"
        # One [path, length] per line: readable, diffable, and still plain JSON.
        body = ",\n".join(json.dumps(item) for item in items)
        _atomic_write_text(path, f"[\n{body}\n]\n")
        written.append(path)
    return written


def read_index(layout: Layout, split_dir: Path, task: str, n_src: int) -> list[Utterance]:
    """Read the index of one prepared split folder (``DATA_DIR/<split>``).

    Raises:
        PreparedIndexError: the folder or its index files are missing, lack columns/sources, or the
            per-folder JSON lists disagree.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise PreparedIndexError(
            f"prepared split folder {split_dir} does not exist: run the prepare step "
            "(stage 1, local/prepare.py) first"
        )
    role = layout.mixture_index_name(task)
    if layout.index == "csv":
        return _read_csv(split_dir, role, n_src)
    return _read_json(split_dir, role, n_src, noisy=task == "sep_noisy")


def _read_csv(split_dir: Path, role: str, n_src: int) -> list[Utterance]:
    found = sorted(split_dir.glob(f"mixture_*_{role}.csv"))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(p.name for p in found)})"
        raise PreparedIndexError(f"expected one mixture_*_{role}.csv in {split_dir}, found {what}")
    return read_librimix_csv(found[0], n_src)


def read_librimix_csv(path: Path, n_src: int, *, require_noise: bool = False) -> list[Utterance]:
    """Rows of a LibriMix mixture CSV (``mixture_ID, mixture_path, source_i_path, length``).

    Args:
        path: The CSV (LibriMix's ``metadata/mixture_<split>_<mix>.csv`` or a prepared one).
        n_src: Number of ``source_i_path`` columns to read.
        require_noise: The ``noise_path`` column must exist (noisy mixtures).
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        needed = ["mixture_ID", "mixture_path", "length"]
        needed += [f"source_{i + 1}_path" for i in range(n_src)]
        needed += ["noise_path"] if require_noise else []
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise PreparedIndexError(f"{path} lacks column(s) {missing} (n_src={n_src})")
        utterances = []
        for line, row in enumerate(reader, start=2):
            try:
                length = int(float(row["length"]))
            except ValueError:
                raise PreparedIndexError(f"{path}:{line}: bad length {row['length']!r}") from None
            utterances.append(
                Utterance(
                    id=row["mixture_ID"],
                    mixture=row["mixture_path"],
                    sources=tuple(row[f"source_{i + 1}_path"] for i in range(n_src)),
                    length=length,
                    noise=row.get("noise_path") or None,
                )
            )
    return utterances


def _load_json_list(path: Path) -> list:
    if not path.is_file():
        raise PreparedIndexError(
            f"index file {path} is missing: re-run the prepare step (stage 1, local/prepare.py)"
        )
    with open(path, encoding="utf-8") as f:
        items = json.load(f)
    if not isinstance(items, list) or any(
        not isinstance(x, list | tuple) or len(x) != 2 for x in items
    ):
        raise PreparedIndexError(f"{path} is not a JSON list of [path, length] pairs")
    return items


def _read_json(split_dir: Path, role: str, n_src: int, noisy: bool) -> list[Utterance]:
    mixtures = _load_json_list(split_dir / f"{role}.json")
    sources = [_load_json_list(split_dir / f"s{i + 1}.json") for i in range(n_src)]
    noise_path = split_dir / "noise.json"
    noises = _load_json_list(noise_path) if noisy and noise_path.is_file() else None
    for name, items in [(f"s{i + 1}.json", s) for i, s in enumerate(sources)] + (
        [("noise.json", noises)] if noises is not None else []
    ):
        if len(items) != len(mixtures):
            raise PreparedIndexError(
                f"{split_dir / name} lists {len(items)} files but {role}.json lists "
                f"{len(mixtures)}: re-run the prepare step"
            )
    utterances = []
    for k, (mix_path, length) in enumerate(mixtures):
        name = os.path.basename(mix_path)
        src_paths = tuple(s[k][0] for s in sources)
        # Asteroid pairs the lists by position; check that position means the same file name.
        for p in src_paths:
            if os.path.basename(p) != name:
                raise PreparedIndexError(
                    f"entry {k} of {split_dir}: mixture {mix_path} is paired with source {p}; "
                    "the per-folder lists are out of order: re-run the prepare step"
                )
        utterances.append(
            Utterance(
                id=os.path.splitext(name)[0],
                mixture=mix_path,
                sources=src_paths,
                length=int(length),
                noise=noises[k][0] if noises is not None else None,
            )
        )
    return utterances


def write_meta(out_dir: Path, meta: dict) -> Path:
    """Write ``DATA_DIR/dataset.json``: what was prepared, from where, how many per split."""
    path = Path(out_dir) / META_FILE
    _atomic_write_text(path, json.dumps(meta, indent=2, sort_keys=True))
    return path


def read_meta(data_dir: Path) -> dict | None:
    path = Path(data_dir) / META_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)
