"""Helpers of the training-loop tests: equal-length data and a model with scripted val losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import soundfile as sf
import torch
from asteroid.models.base_models import BaseModel
from fake_trees import make_librimix_tree

from asteroid_tdanet.data.prepare import prepare


def equal_length_data(root: Path, n_per_split: int, samples: int, noisy: bool = False) -> Path:
    """A prepared Libri2Mix tree whose files all last exactly `samples` samples at 8 kHz.

    With ``data.segment = samples / 8000`` every training crop is the whole file (no random
    offset), so one batch holding the whole training split has a gradient known in advance.
    """
    tree = make_librimix_tree(
        root / "raw", n_per_split=n_per_split, seconds=1.0, noisy=noisy, metadata=False
    )
    for path in sorted(tree.rglob("*.wav")):
        audio, rate = sf.read(path, dtype="int16")
        sf.write(path, audio[:samples], rate, subtype="PCM_16")
    out = root / "data"
    prepare(
        "librimix",
        tree,
        out,
        sample_rate=8000,
        task="sep_noisy" if noisy else "sep_clean",
        progress=False,
    )
    return out


class ScriptedValidation(BaseModel):
    """Test model whose validation loss per epoch the test chooses.

    Training: estimate ``k`` is ``gain[k] * mixture`` (two trainable gains). Validation after
    training epoch ``e``: ``gain[k] * (mixture + levels[e] * z_k)`` with ``z`` a fixed white
    noise. SI-SNR ignores the gains, so the validation loss depends on ``levels[e]`` alone and
    grows with it, whatever training did. The epoch is counted from the training forward passes
    (``steps_per_epoch`` of them per epoch; data loading in the main process).

    ``nan_after_steps >= 0`` turns the training output NaN after that many training forward
    passes, on every DDP rank (``nan_rank = -1``) or on rank ``nan_rank`` only.

    Args:
        n_src: Number of sources.
        sample_rate: Hz.
        levels: Validation noise level per epoch (the last one repeats).
        steps_per_epoch: Training forward passes per epoch of this process.
        nan_after_steps: Training forward passes before the output turns NaN (-1: never).
        nan_rank: The only rank whose output turns NaN (-1: all).
        gains: Initial gains (default: 0.5 to 1.0).
    """

    def __init__(
        self,
        n_src: int = 2,
        sample_rate: float = 8000,
        levels: list[float] | None = None,
        steps_per_epoch: int = 1,
        nan_after_steps: int = -1,
        nan_rank: int = -1,
        gains: list[float] | None = None,
    ):
        super().__init__(sample_rate=sample_rate)
        self.n_src = n_src
        self.levels = [float(v) for v in (levels or [0.0])]
        self.steps_per_epoch = int(steps_per_epoch)
        self.nan_after_steps = int(nan_after_steps)
        self.nan_rank = int(nan_rank)
        start = torch.linspace(0.5, 1.0, n_src) if gains is None else torch.tensor(gains)
        self.gain = torch.nn.Parameter(start.float())
        self.steps = 0

    def _rank(self) -> int:
        dist = torch.distributed
        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, n_src, time)``."""
        if wav.ndim == 1:
            wav = wav[None]
        if self.training:
            out = self.gain[None, :, None] * wav[:, None, :]
            self.steps += 1
            if 0 <= self.nan_after_steps < self.steps and self.nan_rank in (-1, self._rank()):
                out = out * float("nan")
            return out
        epoch = max(0, self.steps // self.steps_per_epoch - 1)  # sanity check: epoch 0's level
        level = self.levels[min(epoch, len(self.levels) - 1)]
        noise = torch.randn(
            self.n_src, wav.shape[-1], generator=torch.Generator().manual_seed(1234)
        )
        return self.gain[None, :, None] * (wav[:, None, :] + level * noise.to(wav))

    def get_model_args(self) -> dict[str, Any]:
        return {
            "n_src": self.n_src,
            "sample_rate": float(self.sample_rate),
            "levels": self.levels,
            "steps_per_epoch": self.steps_per_epoch,
            "nan_after_steps": self.nan_after_steps,
            "nan_rank": self.nan_rank,
            "gains": [float(g) for g in self.gain.detach()],
        }


def register_training_models() -> None:
    """Make the test models known to ``asteroid.models.get`` (idempotent)."""
    from asteroid import models
    from recipe_helpers import register_test_models

    register_test_models()
    try:
        models.get(ScriptedValidation.__name__)
    except ValueError:
        models.register_model(ScriptedValidation)
