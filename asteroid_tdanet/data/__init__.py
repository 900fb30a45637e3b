"""Data for the benchmarks: LibriMix, WHAM! and LRS2-2Mix, prepared and loaded one way.

- `prepare(fmt, root, out_dir, ...)` (stage 1, ``local/prepare_<name>.py``) checks a downloaded
  tree and writes ``DATA_DIR/{train,valid,test}/`` in Asteroid's index formats.
- `make_dataset(fmt, data_dir, split, sample_rate=..., ...)` loads a prepared split; items are
  ``(mixture (time,), sources (n_src, time))`` float32 tensors.

Example:
    >>> from asteroid_tdanet.data import make_dataset
    >>> train = make_dataset("librimix", "data/", "train", sample_rate=8000, segment=3.0)
    >>> mixture, sources = train[0]   # (24000,), (2, 24000)
"""

from .dataset import SeparationDataset, make_dataset
from .index import PreparedIndexError, Utterance
from .layouts import FORMATS, SPLITS, TASKS, get_layout
from .prepare import DataPreparationError, prepare

__all__ = [
    "FORMATS",
    "SPLITS",
    "TASKS",
    "DataPreparationError",
    "PreparedIndexError",
    "SeparationDataset",
    "Utterance",
    "get_layout",
    "make_dataset",
    "prepare",
]
