"""How a benchmark lays out its audio on disk: folders, split names, sample rates, index style.

A `Layout` holds only on-disk facts; everything else about a data set (names, licences, level
rules, scripts) is in its registry entry (`asteroid_tdanet.data.registry`), which owns one.

Real trees (as the generation scripts write them):

- LibriMix:   ``ROOT/Libri2Mix/wav8k/min/{train-100,dev,test}/{mix_clean,mix_both,s1,s2,noise}``
  with LibriMix's metadata CSVs in ``ROOT/Libri2Mix/wav8k/min/metadata/``.
- WHAM!:      ``ROOT/wav8k/min/{tr,cv,tt}/{mix_both,mix_clean,mix_single,s1,s2,noise}``.
- LRS2-2Mix:  ``ROOT/lrs2_rebuild/audio/wav16k/min/{tr,cv,tt}/{mix,s1,s2}`` (16 kHz only).

Prepared indexes (what `asteroid_tdanet.data.prepare` writes and `make_dataset` reads) go to
``DATA_DIR/{train,valid,test}/``: LibriMix CSVs as `asteroid.data.LibriMix` reads them, and
per-folder JSON lists of ``[path, length]`` named after the folders (``mix_both.json``,
``s1.json``...), as `asteroid.data.WhamDataset` and the TDANet authors' loaders read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")
TASKS = ("sep_clean", "sep_noisy")


@dataclass(frozen=True)
class Layout:
    """How one data set lays out its splits and folders on disk.

    Args:
        index: "csv" (LibriMix metadata CSVs) or "json" (per-folder JSON lists).
        default_sample_rate: Sample rate of the benchmark as published.
        sample_rates: Sample rates the tree may hold (one ``wav{k}k`` folder each).
        split_dirs: Our split name -> the data set's split folder name.
        mixture_dirs: Task -> folder holding the mixtures for that task; the JSON index of the
            mixtures is named after it (``mix.json`` for LRS2-2Mix, as the authors' loader).
        top: The data set's own top folder under the download root, ``{n_src}`` filled in
            (``Libri{n_src}Mix``, ``lrs2_rebuild``); "" when the root holds ``wav8k/`` itself.
        audio_dir: Folder between the top folder and ``wav{k}k`` ("audio" for LRS2-2Mix).
        csv_metadata: LibriMix's metadata CSVs sit beside the splits (``.../min/metadata``).
    """

    index: str
    default_sample_rate: int
    sample_rates: tuple[int, ...]
    split_dirs: dict[str, str]
    mixture_dirs: dict[str, str]
    top: str = ""
    audio_dir: str = ""
    csv_metadata: bool = False

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.mixture_dirs)

    def check_task(self, task: str, title: str = "this data set") -> None:
        if task not in self.mixture_dirs:
            raise ValueError(
                f"task {task!r} is not available for {title}; choose one of {list(self.tasks)}"
            )

    def check_sample_rate(self, sample_rate: int, title: str = "this data set") -> None:
        if sample_rate not in self.sample_rates:
            raise ValueError(
                f"{title} exists at {list(self.sample_rates)} Hz, not {sample_rate} Hz"
            )

    def mixture_index_name(self, task: str) -> str:
        self.check_task(task)
        return self.mixture_dirs[task]

    def data_root(self, root: Path, sample_rate: int, mode: str, n_src: int = 2) -> Path:
        """Folder holding the split folders, e.g. ``ROOT/Libri2Mix/wav8k/min``.

        `root` may be the download root (as given to the download step) or the data set's own
        top folder (``Libri2Mix``, ``lrs2_rebuild``), whichever the user points at.
        """
        base = Path(root)
        top = self.top.format(n_src=n_src)
        if top and base.name != top:
            base = base / top
        if self.audio_dir:
            base = base / self.audio_dir
        return base / f"wav{sample_rate // 1000}k" / mode

    def split_dir(
        self, root: Path, split: str, sample_rate: int, mode: str, n_src: int = 2
    ) -> Path:
        check_split(split)
        return self.data_root(root, sample_rate, mode, n_src) / self.split_dirs[split]

    def source_dirs(self, n_src: int) -> list[str]:
        return [f"s{i + 1}" for i in range(n_src)]


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")


LIBRIMIX_LAYOUT = Layout(
    index="csv",
    default_sample_rate=8000,
    sample_rates=(8000, 16000),
    split_dirs={"train": "train-100", "valid": "dev", "test": "test"},
    mixture_dirs={"sep_clean": "mix_clean", "sep_noisy": "mix_both"},
    top="Libri{n_src}Mix",
    csv_metadata=True,
)

WHAM_LAYOUT = Layout(
    index="json",
    default_sample_rate=8000,
    sample_rates=(8000, 16000),
    split_dirs={"train": "tr", "valid": "cv", "test": "tt"},
    mixture_dirs={"sep_clean": "mix_clean", "sep_noisy": "mix_both"},
)

LRS2_2MIX_LAYOUT = Layout(
    index="json",
    default_sample_rate=16000,
    sample_rates=(16000,),
    split_dirs={"train": "tr", "valid": "cv", "test": "tt"},
    mixture_dirs={"sep_clean": "mix"},
    top="lrs2_rebuild",
    audio_dir="audio",
)


def get_layout(name: str) -> Layout:
    """The `Layout` of registered data set `name` (see `asteroid_tdanet.data.registry`)."""
    from .registry import get_entry

    return get_entry(name).layout
