"""Data for the benchmarks: LibriMix, WHAM!, LRS2-2Mix and the offline demo, one way.

- `registry`: one entry per data set (layout, licences, naming, level rules, scripts); its
  name is used everywhere (conf ``data.format``, ``egs/<name>``, ``local/download_<name>.sh``).
- `prepare(name, root, out_dir, ...)` (stage 1, ``local/prepare.py``) checks a downloaded
  tree and writes ``DATA_DIR/{train,valid,test}/`` in Asteroid's index formats.
- `make_dataset(name, data_dir, split, sample_rate=..., ...)` loads a prepared split; items are
  ``(mixture (time,), sources (n_src, time))`` float32 tensors.
- `make_dynamic_mixing_dataset(name, data_dir, ...)`: new training mixtures at every step
  from the training split's speakers, with the data set's level rules (and optional speed
  perturbation); `DynamicMixingSampler` makes it reproducible and DDP-aware.

Example:
    >>> from asteroid_tdanet.data import make_dataset
    >>> train = make_dataset("librimix", "data/", "train", sample_rate=8000, segment=3.0)
    >>> mixture, sources = train[0]   # (24000,), (2, 24000)
"""

from .dataset import SeparationDataset, make_dataset
from .dynamic_mixing import (
    DynamicMixingDataset,
    DynamicMixingSampler,
    make_dynamic_mixing_dataset,
)
from .index import PreparedIndexError, Utterance
from .layouts import SPLITS, TASKS, get_layout
from .prepare import DataPreparationError, prepare
from .registry import ENTRIES, NAMES, DatasetEntry, get_entry

__all__ = [
    "ENTRIES",
    "NAMES",
    "SPLITS",
    "TASKS",
    "DataPreparationError",
    "DatasetEntry",
    "DynamicMixingDataset",
    "DynamicMixingSampler",
    "PreparedIndexError",
    "SeparationDataset",
    "Utterance",
    "get_entry",
    "get_layout",
    "make_dataset",
    "make_dynamic_mixing_dataset",
    "prepare",
]
