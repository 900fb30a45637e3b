"""Where each benchmark keeps its audio: one `Layout` per data set, the only per-dataset facts.

Real trees (as the generation scripts write them):

- LibriMix:   ``ROOT/Libri2Mix/wav8k/min/{train-100,dev,test}/{mix_clean,mix_both,s1,s2,noise}``
  with LibriMix's metadata CSVs in ``ROOT/Libri2Mix/wav8k/min/metadata/``.
- WHAM!:      ``ROOT/wav8k/min/{tr,cv,tt}/{mix_both,mix_clean,mix_single,s1,s2,noise}``.
- LRS2-2Mix:  ``ROOT/lrs2_rebuild/audio/wav16k/min/{tr,cv,tt}/{mix,s1,s2}`` (16 kHz only).

Prepared indexes (what `asteroid_tdanet.data.prepare` writes and `make_dataset` reads) go to
``DATA_DIR/{train,valid,test}/``: LibriMix CSVs as `asteroid.data.LibriMix` reads them, and
per-folder JSON lists of ``[path, length]`` as `asteroid.data.WhamDataset` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "valid", "test")
TASKS = ("sep_clean", "sep_noisy")


@dataclass(frozen=True)
class Layout:
    """How one data set lays out its splits and folders on disk.

    Args:
        name: Format name used by `make_dataset` ("librimix", "wham", "lrs2").
        dataset_name: Human name stored in model cards ("LibriMix", "WHAM!", "LRS2-2Mix").
        index: "csv" (LibriMix metadata CSVs) or "json" (WHAM-style per-folder JSON lists).
        default_sample_rate: Sample rate of the benchmark as published.
        sample_rates: Sample rates the tree may hold (one ``wav{k}k`` folder each).
        split_dirs: Our split name -> the data set's split folder name.
        mixture_dirs: Task -> folder holding the mixtures for that task.
        index_names: Task -> name of the mixture index (JSON file stem / CSV suffix), chosen so
            that Asteroid's own dataset classes find it.
    """

    name: str
    dataset_name: str
    index: str
    default_sample_rate: int
    sample_rates: tuple[int, ...]
    split_dirs: dict[str, str]
    mixture_dirs: dict[str, str]
    index_names: dict[str, str] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.mixture_dirs)

    def check_task(self, task: str) -> None:
        if task not in self.mixture_dirs:
            raise ValueError(
                f"task {task!r} is not available for {self.dataset_name}; "
                f"choose one of {list(self.tasks)}"
            )

    def check_sample_rate(self, sample_rate: int) -> None:
        if sample_rate not in self.sample_rates:
            raise ValueError(
                f"{self.dataset_name} exists at {list(self.sample_rates)} Hz, not {sample_rate} Hz"
            )

    def mixture_index_name(self, task: str) -> str:
        self.check_task(task)
        return self.index_names.get(task, self.mixture_dirs[task])

    def data_root(self, root: Path, sample_rate: int, mode: str, n_src: int = 2) -> Path:
        """Folder holding the split folders, e.g. ``ROOT/Libri2Mix/wav8k/min``.

        `root` may be the download root (as given to the download step) or the data set's own
        top folder (``Libri2Mix``, ``lrs2_rebuild``), whichever the user points at.
        """
        root = Path(root)
        rate_dir = f"wav{sample_rate // 1000}k"
        if self.name == "librimix":
            top = f"Libri{n_src}Mix"
            base = root if root.name == top else root / top
        elif self.name == "lrs2":
            base = root if root.name == "lrs2_rebuild" else root / "lrs2_rebuild"
            base = base / "audio"
        else:
            base = root
        return base / rate_dir / mode

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


LAYOUTS: dict[str, Layout] = {
    "librimix": Layout(
        name="librimix",
        dataset_name="LibriMix",
        index="csv",
        default_sample_rate=8000,
        sample_rates=(8000, 16000),
        split_dirs={"train": "train-100", "valid": "dev", "test": "test"},
        mixture_dirs={"sep_clean": "mix_clean", "sep_noisy": "mix_both"},
    ),
    "wham": Layout(
        name="wham",
        dataset_name="WHAM!",
        index="json",
        default_sample_rate=8000,
        sample_rates=(8000, 16000),
        split_dirs={"train": "tr", "valid": "cv", "test": "tt"},
        mixture_dirs={"sep_clean": "mix_clean", "sep_noisy": "mix_both"},
    ),
    "lrs2": Layout(
        name="lrs2",
        dataset_name="LRS2-2Mix",
        index="json",
        default_sample_rate=16000,
        sample_rates=(16000,),
        split_dirs={"train": "tr", "valid": "cv", "test": "tt"},
        mixture_dirs={"sep_clean": "mix"},
        # The mixtures sit in "mix/", but Asteroid's WhamDataset(task="sep_clean") reads
        # mix_clean.json: name the index by the mixture's role so that class works too.
        index_names={"sep_clean": "mix_clean"},
    ),
}

FORMATS = tuple(LAYOUTS)


def get_layout(fmt: str) -> Layout:
    """The `Layout` of format `fmt` (one of `FORMATS`)."""
    try:
        return LAYOUTS[fmt]
    except KeyError:
        raise ValueError(f"unknown data format {fmt!r}; choose one of {list(FORMATS)}") from None
