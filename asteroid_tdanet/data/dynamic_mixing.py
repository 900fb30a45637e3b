"""Dynamic mixing: every training item is a new mixture drawn from the training split's speakers.

Item `k` of epoch `e` mixes `n_src` utterances of different speakers (chosen uniformly over
utterances, as LibriMix pairs them), each cropped at a random place to the training segment
and, optionally, speed-perturbed first (`asteroid_tdanet.data.speed`); for noisy tasks a
random crop of a training noise recording is added. Levels follow the data set's own rules
(`asteroid_tdanet.data.levels`). Validation and test keep the fixed official mixtures.

Reproducibility: everything about item ``(e, k)`` is drawn from its own generator,
``numpy.random.default_rng([seed, e, k])``. So the same seed gives the same mixtures whatever
the number of dataloader workers, resuming at epoch `e` (Lightning restores the epoch and calls
``set_epoch``) continues the very sequence of an uninterrupted run, and since each index is
drawn by exactly one worker of one process, workers and DDP ranks never draw the same mixture.
`DynamicMixingSampler` carries the epoch inside the index (``e * len + k``) and splits the
``k`` among DDP ranks; it subclasses `DistributedSampler` so that Lightning keeps it instead of
injecting its own.

Example:
    >>> train = make_dynamic_mixing_dataset("librimix", "data/librimix_8000", sample_rate=8000,
    ...                                     segment=3.0, seed=0, speed_perturb=[0.95, 1, 1.05])
    >>> loader = DataLoader(train, batch_size=4, sampler=DynamicMixingSampler(len(train)),
    ...                     drop_last=True)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from . import speed
from .index import read_meta
from .levels import LevelRule
from .registry import get_entry
from .source_pool import SourcePool, load_source_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Draw:
    """Everything random about one mixture (its "recipe"), before any audio is read.

    Args:
        epoch: Epoch of the item.
        index: Item index within the epoch.
        utterances: Pool indices of the speech utterances, one per source.
        offsets: Start sample of each source's input window in its utterance.
        speeds: Speed factor of each source (1.0 without perturbation).
        levels: The level rule's draws (see `asteroid_tdanet.data.levels`).
        noise: Pool index of the noise recording (None for clean tasks).
        noise_offset: Start sample of the noise crop.
    """

    epoch: int
    index: int
    utterances: tuple[int, ...]
    offsets: tuple[int, ...]
    speeds: tuple[float, ...]
    levels: dict[str, Any] = field(hash=False)
    noise: int | None = None
    noise_offset: int = 0


class DynamicMixingDataset(Dataset):
    """New mixtures of the training split's utterances (see the module docstring).

    Args:
        pool: Utterances and noise at the recipe's sample rate.
        levels: The data set's level rule.
        n_src: Sources per mixture (each from a different speaker).
        segment: Length of the mixtures in seconds.
        mixtures_per_epoch: Items per epoch.
        seed: Seed of every draw (the conf's ``training.seed``).
        speed_perturb: Speed factors drawn uniformly per source (None: no perturbation).
        noisy: Add a training noise crop (``sep_noisy``).
        return_id: Items also carry an id ``e<epoch>-<index>:<utt1>+<utt2>``.
        dataset_name: Name stored in `get_infos`.
        task: Task stored in `get_infos`.
        licenses: Licence dicts stored in `get_infos`.

    Items:
        ``(mixture (time,), sources (n_src, time))`` float32 tensors, ``mixture`` being the sum
        of the sources (plus the noise). Indices ``>= len`` encode the epoch: item
        ``e * len + k`` is item `k` of epoch `e` (see `DynamicMixingSampler`).
    """

    def __init__(
        self,
        pool: SourcePool,
        levels: LevelRule,
        *,
        n_src: int,
        segment: float,
        mixtures_per_epoch: int,
        seed: int,
        speed_perturb: Sequence[float] | None = None,
        noisy: bool = False,
        return_id: bool = False,
        dataset_name: str = "",
        task: str = "sep_clean",
        licenses: list[dict] | None = None,
    ):
        if segment is None or segment <= 0:
            raise ValueError(f"dynamic mixing needs a segment > 0 seconds, not {segment}")
        if mixtures_per_epoch < 1:
            raise ValueError(f"mixtures_per_epoch must be >= 1, not {mixtures_per_epoch}")
        if noisy and not pool.noise:
            raise ValueError("a noisy task needs noise recordings, but the pool has none")
        self.pool = pool
        self.levels = levels
        self.n_src = n_src
        self.sample_rate = pool.sample_rate
        self.segment = segment
        self.seg_len = int(round(segment * self.sample_rate))
        self.mixtures_per_epoch = int(mixtures_per_epoch)
        self.seed = int(seed)
        self.speeds = speed.check_factors(speed_perturb) if speed_perturb else (1.0,)
        self.noisy = noisy
        self.return_id = return_id
        self.dataset_name = dataset_name
        self.task = task
        self.licenses = list(licenses or [])
        # Utterances long enough for the largest input window a speed factor needs.
        need = max(speed.input_length(self.seg_len, f) for f in self.speeds)
        self.usable = [i for i, u in enumerate(pool.speech) if u.length >= need]
        self.noise_usable = [i for i, u in enumerate(pool.noise) if u.length >= self.seg_len]
        dropped = len(pool.speech) - len(self.usable)
        if dropped:
            log.info(
                "dynamic mixing: %d of %d utterances are shorter than the %d samples a crop "
                "needs and are not used",
                dropped,
                len(pool.speech),
                need,
            )
        speakers = {pool.speech[i].speaker for i in self.usable}
        if len(speakers) < n_src:
            raise ValueError(
                f"dynamic mixing needs {n_src} speakers with utterances of at least "
                f"{need / self.sample_rate:.2f} s; only {len(speakers)} have any "
                f"({len(self.usable)} utterances): use a shorter data.segment"
            )
        if noisy and not self.noise_usable:
            raise ValueError(f"no noise recording lasts data.segment={segment} s")

    def __len__(self) -> int:
        return self.mixtures_per_epoch

    def draw(self, index: int) -> Draw:
        """The random choices of item `index` (``epoch * len + k``), no audio read."""
        epoch, k = divmod(int(index), self.mixtures_per_epoch)
        rng = np.random.default_rng([self.seed, epoch, k])
        chosen: list[int] = []
        speakers: set[str] = set()
        while len(chosen) < self.n_src:
            u = self.usable[int(rng.integers(len(self.usable)))]
            if self.pool.speech[u].speaker not in speakers:
                chosen.append(u)
                speakers.add(self.pool.speech[u].speaker)
        speeds = tuple(float(self.speeds[int(rng.integers(len(self.speeds)))]) for _ in chosen)
        offsets = []
        for u, f in zip(chosen, speeds, strict=True):
            span = self.pool.speech[u].length - speed.input_length(self.seg_len, f)
            offsets.append(int(rng.integers(span + 1)))
        noise, noise_offset = None, 0
        if self.noisy:
            noise = self.noise_usable[int(rng.integers(len(self.noise_usable)))]
            noise_offset = int(rng.integers(self.pool.noise[noise].length - self.seg_len + 1))
        return Draw(
            epoch=epoch,
            index=k,
            utterances=tuple(chosen),
            offsets=tuple(offsets),
            speeds=speeds,
            levels=self.levels.draw(rng, self.n_src, self.noisy),
            noise=noise,
            noise_offset=noise_offset,
        )

    def render(self, draw: Draw) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Read, perturb and level the audio of `draw`.

        Returns:
            ``(mixture (time,), sources (n_src, time), noise (time,) or None)``, float64.
        """
        sources = np.empty((self.n_src, self.seg_len))
        for i, (u, offset, f) in enumerate(
            zip(draw.utterances, draw.offsets, draw.speeds, strict=True)
        ):
            item = self.pool.speech[u]
            raw = self.pool.read(item, offset, offset + speed.input_length(self.seg_len, f))
            sources[i] = speed.perturb_crop(raw, f, self.seg_len)
        noise = noise_stats = None
        if draw.noise is not None:
            item = self.pool.noise[draw.noise]
            noise = self.pool.read(item, draw.noise_offset, draw.noise_offset + self.seg_len)
            noise_stats = item.stats
        stats = [self.pool.speech[u].stats for u in draw.utterances]
        sources, noise = self.levels.apply(sources, noise, draw.levels, stats, noise_stats)
        mixture = sources.sum(axis=0) + (noise if noise is not None else 0.0)
        return mixture, sources, noise

    def item_id(self, draw: Draw) -> str:
        utts = "+".join(self.pool.speech[u].id for u in draw.utterances)
        return f"e{draw.epoch}-{draw.index}:{utts}"

    def __getitem__(self, index: int):
        draw = self.draw(index)
        mixture, sources, _ = self.render(draw)
        out = (
            torch.from_numpy(mixture.astype(np.float32)),
            torch.from_numpy(sources.astype(np.float32)),
        )
        return (*out, self.item_id(draw)) if self.return_id else out

    def get_infos(self) -> dict:
        """Data set, task and licences, as Asteroid's datasets give them for model cards."""
        return {"dataset": self.dataset_name, "task": self.task, "licenses": self.licenses}


class DynamicMixingSampler(DistributedSampler):
    """Indices ``epoch * size + k`` of a `DynamicMixingDataset`, the ``k`` split among ranks.

    Rank `r` of `w` gets ``k = r, r + w, r + 2w, ...`` (``size // w`` of them, the same count
    on every rank). The rank and world size are read from `torch.distributed` when iterating
    (after Lightning set up the process group) unless given. Lightning calls `set_epoch`.

    Args:
        size: The dataset's ``len`` (mixtures per epoch).
        num_replicas: World size (None: from torch.distributed, 1 when not initialised).
        rank: This process's rank (None: likewise).
    """

    def __init__(self, size: int, num_replicas: int | None = None, rank: int | None = None):
        # DistributedSampler.__init__ would require an initialised process group now.
        self.size = int(size)
        self._num_replicas = num_replicas
        self._rank = rank
        self.epoch = 0
        # DistributedSampler's other attributes, for code that reads them.
        self.shuffle, self.seed, self.drop_last = False, 0, True

    def _world(self) -> tuple[int, int]:
        if self._num_replicas is not None:
            return self._num_replicas, self._rank or 0
        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    @property
    def num_replicas(self) -> int:  # DistributedSampler's attribute, read by Lightning
        return self._world()[0]

    @property
    def rank(self) -> int:
        return self._world()[1]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size // self._world()[0]

    def __iter__(self) -> Iterator[int]:
        world, rank = self._world()
        base = self.epoch * self.size
        return iter(base + rank + world * i for i in range(self.size // world))


def make_dynamic_mixing_dataset(
    name: str,
    data_dir: str | Path,
    *,
    sample_rate: int,
    segment: float,
    seed: int,
    n_src: int = 2,
    task: str = "sep_clean",
    mixtures_per_epoch: int | None = None,
    speed_perturb: Sequence[float] | None = None,
    return_id: bool = False,
    progress: bool = True,
) -> DynamicMixingDataset:
    """The dynamic-mixing training set of a prepared data dir.

    Args:
        name: Registered data set name (``data.format``).
        data_dir: Prepared data dir (stage 1).
        sample_rate: The recipe's sample rate in Hz (must be the prepared one).
        segment: Mixture length in seconds.
        seed: Seed of the draws.
        n_src: Sources per mixture.
        task: "sep_clean" or "sep_noisy" (adds training noise).
        mixtures_per_epoch: Items per epoch (None: as many as the fixed training set).
        speed_perturb: Speed factors per source, e.g. ``[0.95, 1.0, 1.05]`` (None: off).
        return_id: Items also carry an id.
        progress: Progress bar while the pool is built (first run only).
    """
    entry = get_entry(name)
    entry.layout.check_task(task, entry.title)
    meta = read_meta(Path(data_dir))
    if meta is not None and int(meta.get("sample_rate", sample_rate)) != int(sample_rate):
        raise ValueError(
            f"{data_dir} was prepared at {meta['sample_rate']} Hz but sample_rate={sample_rate}"
        )
    pool = load_source_pool(
        name,
        data_dir,
        sample_rate=sample_rate,
        n_src=n_src,
        task=task,
        loudness=entry.levels.needs_loudness,
        progress=progress,
    )
    pool.preload()
    if mixtures_per_epoch is None:
        mixtures_per_epoch = int((meta or {}).get("counts", {}).get("train", 0)) or len(pool.speech)
    return DynamicMixingDataset(
        pool,
        entry.levels,
        n_src=n_src,
        segment=segment,
        mixtures_per_epoch=mixtures_per_epoch,
        seed=seed,
        speed_perturb=speed_perturb,
        noisy=task == "sep_noisy",
        return_id=return_id,
        dataset_name=entry.title,
        task=task,
        licenses=entry.license_dicts(task),
    )
