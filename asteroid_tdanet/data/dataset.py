"""One dataset class for the three benchmarks, built from a prepared index.

Why not `asteroid.data.LibriMix` / `asteroid.data.WhamDataset` directly: they never check the
sample rate of what they read, LibriMix returns ids as a list split from the file name, and
both crop validation items at random (validation loss then changes between epochs with the
same weights). The index files stay Asteroid's formats, so their classes read them too.

Short items: with a `segment`, mixtures shorter than it are *dropped*, not zero-padded (as
Asteroid and the TDANet authors do). Padding would train on silent targets, where SI-SNR is
undefined, and would count the same padded zeros in every epoch; on the benchmarks'
``min`` versions it loses few mixtures, and the number and hours dropped are logged.

Speed perturbation of fixed mixtures (``speed_perturb``, training only), as the authors'
``SpeedAug``: each source is sped up by its own factor drawn from the list, the sources are cut
to the segment (or, for whole utterances, to the shortest) and the mixture is their sum again
(plus the noise, unchanged, for noisy tasks).
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from . import speed
from .index import Utterance, read_index, read_meta
from .layouts import check_split
from .registry import get_entry

logger = logging.getLogger(__name__)


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
        speed_perturb: Speed factors drawn uniformly per source, then the mixture is re-made
            from the perturbed sources (None: the files as they are).

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
        speed_perturb: list[float] | None = None,
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
        self.speeds = speed.check_factors(speed_perturb) if speed_perturb else None
        self.n_dropped = 0
        if self.seg_len is not None:
            # With speed perturbation, a crop reads more samples than it returns.
            need = max(speed.input_length(self.seg_len, f) for f in self.speeds or (1.0,))
            kept = [u for u in utterances if u.length >= need]
            dropped = [u for u in utterances if u.length < need]
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

    def _window(self, idx: int, length: int, seg_len: int | None) -> tuple[int, int | None]:
        if seg_len is None:
            return 0, None
        span = length - seg_len
        if span <= 0:
            start = 0
        elif self.random_crop:
            # torch's generator is seeded per DataLoader worker (numpy's is not).
            start = int(torch.randint(0, span + 1, ()).item())
        else:
            # Fixed per item and independent of process/worker: a hash of its id.
            key = zlib.crc32(self.utterances[idx].id.encode("utf-8"))
            start = int(np.random.default_rng(key).integers(0, span + 1))
        return start, start + seg_len

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
        if self.speeds is not None:
            mixture, sources = self._perturbed(u, idx)
        else:
            start, stop = self._window(idx, u.length, self.seg_len)
            mixture = self._read(u.mixture, start, stop)
            sources = np.stack(
                [self._read_source(path, u, start, stop, len(mixture)) for path in u.sources]
            )
        mixture_t = torch.from_numpy(mixture)
        sources_t = torch.from_numpy(sources)
        if self.return_id:
            return mixture_t, sources_t, u.id
        return mixture_t, sources_t

    def _read_source(self, path: str, u: Utterance, start: int, stop: int | None, n: int):
        source = self._read(path, start, stop)
        if len(source) != n:
            raise ValueError(
                f"{path} gives {len(source)} samples where its mixture {u.mixture} gives {n}"
            )
        return source

    def _perturbed(self, u: Utterance, idx: int) -> tuple[np.ndarray, np.ndarray]:
        # torch's generator, as for the crops: seeded per DataLoader worker by Lightning.
        picks = torch.randint(0, len(self.speeds), (len(u.sources),)).tolist()
        factors = [self.speeds[k] for k in picks]
        if self.seg_len is None:
            sources = [
                speed.perturb(self._read(path, 0, None).astype(np.float64), f)
                for path, f in zip(u.sources, factors, strict=True)
            ]
            length = min(len(s) for s in sources)
            if self.task == "sep_noisy":  # the noise is not perturbed: it lasts the mixture
                length = min(length, u.length)
            start = 0
        else:
            windows = [speed.input_length(self.seg_len, f) for f in factors]
            start, _ = self._window(idx, u.length, max(windows))
            sources = [
                speed.perturb_crop(
                    self._read_source(path, u, start, start + n, n).astype(np.float64),
                    f,
                    self.seg_len,
                )
                for path, f, n in zip(u.sources, factors, windows, strict=True)
            ]
            length = self.seg_len
        stacked = np.stack([s[:length] for s in sources])
        mixture = stacked.sum(axis=0)
        if self.task == "sep_noisy":
            if u.noise is None:
                raise ValueError(
                    f"speed perturbation of the noisy mixture {u.mixture} needs its noise file, "
                    "which the prepared index does not list"
                )
            mixture = mixture + self._read(u.noise, start, start + length)
        return mixture.astype(np.float32), stacked.astype(np.float32)

    def get_infos(self) -> dict:
        """Data set, task and licences, as Asteroid's datasets give them for model cards."""
        return {"dataset": self.dataset_name, "task": self.task, "licenses": self.licenses}


def make_dataset(
    name: str,
    data_dir: str | Path,
    split: str,
    *,
    sample_rate: int,
    n_src: int = 2,
    segment: float | None = None,
    task: str = "sep_clean",
    return_id: bool = False,
    speed_perturb: list[float] | None = None,
) -> SeparationDataset:
    """The dataset of one prepared split.

    Args:
        name: Registered data set name (`asteroid_tdanet.data.registry.NAMES`).
        data_dir: The ``--out`` folder of the prepare step (holds ``train/``, ``valid/``...).
        split: "train", "valid" or "test".
        sample_rate: Expected sample rate in Hz; every file read is checked against it.
        n_src: Number of sources.
        segment: Excerpt length in seconds: random crops for "train", fixed crops otherwise;
            shorter mixtures are dropped. None returns whole utterances.
        task: "sep_clean" or "sep_noisy" (not for LRS2-2Mix).
        return_id: Items also carry the utterance id (str).
        speed_perturb: Speed factors per source for the "train" split (module docstring).

    Returns:
        A `SeparationDataset` whose items are ``(mixture (time,), sources (n_src, time))``.

    Raises:
        ValueError: unknown data set/split/task, or a data dir prepared for another data set or
            sample rate, or speed perturbation asked for a split other than "train".
        asteroid_tdanet.data.index.PreparedIndexError: missing or inconsistent index files.
    """
    entry = get_entry(name)
    check_split(split)
    entry.layout.check_task(task, entry.title)
    if speed_perturb and split != "train":
        raise ValueError(f"speed perturbation is for training only, not the {split!r} split")
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    if meta is not None:
        if meta.get("format") != entry.name:
            raise ValueError(
                f"{data_dir} was prepared for data set {meta.get('format')!r}, not {name!r}: "
                f"re-run the prepare step (local/prepare.py --dataset {name})"
            )
        if int(meta.get("sample_rate", sample_rate)) != int(sample_rate):
            raise ValueError(
                f"{data_dir} was prepared at {meta['sample_rate']} Hz but sample_rate="
                f"{sample_rate} was asked: re-run the prepare step with --sample_rate "
                f"{sample_rate} or fix the config"
            )
    utterances = read_index(entry.layout, data_dir / split, task, n_src)
    return SeparationDataset(
        utterances,
        sample_rate=sample_rate,
        n_src=n_src,
        segment=segment,
        random_crop=split == "train",
        return_id=return_id,
        dataset_name=entry.title,
        task=task,
        licenses=entry.license_dicts(task),
        speed_perturb=speed_perturb,
    )
