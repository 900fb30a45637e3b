"""One dataset class for the three benchmarks, built from a prepared index.

Why not `asteroid.data.LibriMix` / `asteroid.data.WhamDataset` directly: they never check the
sample rate of what they read, LibriMix returns ids as a list split from the file name, and
both crop validation items at random (validation loss then changes between epochs with the
same weights). The index files stay Asteroid's formats, so their classes read them too.

Short items: with a `segment`, mixtures shorter than it are *dropped*, not zero-padded (as
Asteroid and the TDANet authors do). Padding would train on silent targets, where SI-SNR is
undefined, and would count the same padded zeros in every epoch; on the benchmarks'
``min`` versions it loses few mixtures, and the number and hours dropped are logged.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from .index import Utterance, read_index, read_meta
from .layouts import check_split, get_layout

logger = logging.getLogger(__name__)

_LICENSES = {
    "librimix": [
        {
            "title": "LibriSpeech ASR corpus",
            "title_link": "http://www.openslr.org/12",
            "author": "Vassil Panayotov, Guoguo Chen, Daniel Povey, Sanjeev Khudanpur",
            "author_link": "http://www.openslr.org/12",
            "license": "CC BY 4.0",
            "license_link": "https://creativecommons.org/licenses/by/4.0/",
            "non_commercial": False,
        }
    ],
    "wham": [
        {
            "title": "CSR-I (WSJ0) Complete",
            "title_link": "https://catalog.ldc.upenn.edu/LDC93S6A",
            "author": "LDC",
            "author_link": "https://www.ldc.upenn.edu/",
            "license": "LDC User Agreement for Non-Members",
            "license_link": "https://catalog.ldc.upenn.edu/license/ldc-non-members-agreement.pdf",
            "non_commercial": True,
        }
    ],
    "lrs2": [
        {
            "title": "The Oxford-BBC Lip Reading Sentences 2 (LRS2) Dataset",
            "title_link": "https://www.robots.ox.ac.uk/~vgg/data/lip_reading/lrs2.html",
            "author": "BBC, University of Oxford (VGG)",
            "author_link": "https://www.robots.ox.ac.uk/~vgg/",
            "license": "BBC non-commercial research use only",
            "license_link": "https://www.bbc.co.uk/rd/projects/lip-reading-datasets",
            "non_commercial": True,
        }
    ],
}
_WHAM_NOISE_LICENSE = {
    "title": "The WSJ0 Hipster Ambient Mixtures dataset",
    "title_link": "http://wham.whisper.ai/",
    "author": "Whisper.ai",
    "author_link": "https://whisper.ai/",
    "license": "CC BY-NC 4.0",
    "license_link": "https://creativecommons.org/licenses/by-nc/4.0/",
    "non_commercial": True,
}


class SeparationDataset(Dataset):
    """Mixtures and their sources, read from wav files listed in an index.

    Args:
        utterances: The mixtures (see `asteroid_tdanet.data.index.Utterance`).
        sample_rate: Sample rate every file must have, in Hz.
        n_src: Number of sources per mixture.
        segment: Length of the returned excerpts in seconds; None returns whole utterances.
            Utterances shorter than a segment are dropped (see the module docstring).
        random_crop: With a segment, pick the excerpt at random on each access (training);
            otherwise at a fixed position per item (same excerpt every epoch, validation).
        return_id: Also return the utterance id.
        dataset_name: Name stored in `get_infos` (model cards).
        task: Task name stored in `get_infos`.
        licenses: Licence dicts stored in `get_infos`.

    Items:
        ``(mixture, sources)``: float32 tensors of shape ``(time,)`` and ``(n_src, time)``;
        ``(mixture, sources, id)`` with `return_id`.
    """

    def __init__(
        self,
        utterances: list[Utterance],
        *,
        sample_rate: int,
        n_src: int = 2,
        segment: float | None = None,
        random_crop: bool = True,
        return_id: bool = False,
        dataset_name: str = "",
        task: str = "sep_clean",
        licenses: list[dict] | None = None,
    ):
        if segment is not None and segment <= 0:
            raise ValueError(f"segment must be > 0 seconds or None, not {segment}")
        for u in utterances:
            if len(u.sources) != n_src:
                raise ValueError(
                    f"mixture {u.mixture} has {len(u.sources)} sources listed, expected {n_src}"
                )
        self.sample_rate = int(sample_rate)
        self.n_src = n_src
        self.segment = segment
        self.seg_len = None if segment is None else int(round(segment * self.sample_rate))
        self.random_crop = random_crop
        self.return_id = return_id
        self.dataset_name = dataset_name
        self.task = task
        self.licenses = list(licenses or [])
        self.n_dropped = 0
        if self.seg_len is not None:
            kept = [u for u in utterances if u.length >= self.seg_len]
            dropped = [u for u in utterances if u.length < self.seg_len]
            self.n_dropped = len(dropped)
            if dropped:
                logger.info(
                    "dropped %d of %d mixtures (%.2f h) shorter than %g s",
                    len(dropped),
                    len(utterances),
                    sum(u.length for u in dropped) / self.sample_rate / 3600,
                    segment,
                )
            if utterances and not kept:
                longest = max(u.length for u in utterances) / self.sample_rate
                raise ValueError(
                    f"all {len(utterances)} mixtures are shorter than segment={segment} s "
                    f"(the longest lasts {longest:.2f} s): use a shorter segment"
                )
            utterances = kept
        self.utterances = list(utterances)

    def __len__(self) -> int:
        return len(self.utterances)

    def _window(self, idx: int, length: int) -> tuple[int, int | None]:
        if self.seg_len is None:
            return 0, None
        span = length - self.seg_len
        if span <= 0:
            start = 0
        elif self.random_crop:
            # torch's generator is seeded per DataLoader worker (numpy's is not).
            start = int(torch.randint(0, span + 1, ()).item())
        else:
            # Fixed per item and independent of process/worker: a hash of its id.
            key = zlib.crc32(self.utterances[idx].id.encode("utf-8"))
            start = int(np.random.default_rng(key).integers(0, span + 1))
        return start, start + self.seg_len

    def _read(self, path: str, start: int, stop: int | None) -> np.ndarray:
        try:
            audio, rate = sf.read(path, start=start, stop=stop, dtype="float32")
        except (RuntimeError, sf.LibsndfileError) as err:
            raise RuntimeError(f"cannot read {path}: {err}") from err
        if rate != self.sample_rate:
            raise ValueError(f"{path} has sample rate {rate} Hz, expected {self.sample_rate} Hz")
        if audio.ndim != 1:
            raise ValueError(f"{path} has {audio.shape[1]} channels, expected mono")
        return audio

    def __getitem__(self, idx: int):
        u = self.utterances[idx]
        start, stop = self._window(idx, u.length)
        mixture = self._read(u.mixture, start, stop)
        sources = []
        for path in u.sources:
            source = self._read(path, start, stop)
            if len(source) != len(mixture):
                raise ValueError(
                    f"{path} gives {len(source)} samples where its mixture {u.mixture} gives "
                    f"{len(mixture)}"
                )
            sources.append(source)
        mixture_t = torch.from_numpy(mixture)
        sources_t = torch.from_numpy(np.stack(sources))
        if self.return_id:
            return mixture_t, sources_t, u.id
        return mixture_t, sources_t

    def get_infos(self) -> dict:
        """Data set, task and licences, as Asteroid's datasets give them for model cards."""
        return {"dataset": self.dataset_name, "task": self.task, "licenses": self.licenses}


def make_dataset(
    fmt: str,
    data_dir: str | Path,
    split: str,
    *,
    sample_rate: int,
    n_src: int = 2,
    segment: float | None = None,
    task: str = "sep_clean",
    return_id: bool = False,
) -> SeparationDataset:
    """The dataset of one prepared split.

    Args:
        fmt: "librimix", "wham" or "lrs2" (see `FORMATS`).
        data_dir: The ``--out`` folder of the prepare step (holds ``train/``, ``valid/``...).
        split: "train", "valid" or "test".
        sample_rate: Expected sample rate in Hz; every file read is checked against it.
        n_src: Number of sources.
        segment: Excerpt length in seconds: random crops for "train", fixed crops otherwise;
            shorter mixtures are dropped. None returns whole utterances.
        task: "sep_clean" or "sep_noisy" (not for LRS2-2Mix).
        return_id: Items also carry the utterance id (str).

    Returns:
        A `SeparationDataset` whose items are ``(mixture (time,), sources (n_src, time))``.

    Raises:
        ValueError: unknown format/split/task, or a data dir prepared for another format or
            sample rate.
        asteroid_tdanet.data.index.PreparedIndexError: missing or inconsistent index files.
    """
    layout = get_layout(fmt)
    check_split(split)
    layout.check_task(task)
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    if meta is not None:
        if meta.get("format") != layout.name:
            raise ValueError(
                f"{data_dir} was prepared for format {meta.get('format')!r}, not {fmt!r}"
            )
        if int(meta.get("sample_rate", sample_rate)) != int(sample_rate):
            raise ValueError(
                f"{data_dir} was prepared at {meta['sample_rate']} Hz but sample_rate="
                f"{sample_rate} was asked: re-run the prepare step with --sample_rate "
                f"{sample_rate} or fix the config"
            )
    utterances = read_index(layout, data_dir / split, task, n_src)
    licenses = list(_LICENSES[layout.name])
    if task == "sep_noisy":
        licenses.append(_WHAM_NOISE_LICENSE)
    return SeparationDataset(
        utterances,
        sample_rate=sample_rate,
        n_src=n_src,
        segment=segment,
        random_crop=split == "train",
        return_id=return_id,
        dataset_name=layout.dataset_name,
        task=task,
        licenses=licenses,
    )
