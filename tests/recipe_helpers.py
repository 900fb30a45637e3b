"""Helpers of the recipe tests: tiny model sizes, a tiny conf, a closed-form test model."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asteroid.models.base_models import BaseModel

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("librimix", "wham", "lrs2_2mix")
CONFS = ("tdanet", "tdanet_large", "convtasnet", "sepformer")

# Model arguments that make each model of the recipes fast on one CPU core.
TINY_ARGS: dict[str, dict[str, Any]] = {
    "TDANet": {"bn_chan": 16, "hid_chan": 32, "n_blocks": 2, "upsampling_depth": 3, "n_heads": 4},
    "TDANetLarge": {
        "bn_chan": 16,
        "hid_chan": 32,
        "n_blocks": 2,
        "upsampling_depth": 3,
        "n_heads": 4,
    },
    "ConvTasNet": {
        "n_filters": 32,
        "bn_chan": 16,
        "hid_chan": 32,
        "skip_chan": 16,
        "n_blocks": 2,
        "n_repeats": 1,
    },
    "Sepformer": {
        "n_filters": 16,
        "chunk_size": 20,
        "n_repeats": 1,
        "n_layers": 1,
        "n_heads": 2,
        "d_ffn": 32,
    },
}
# Training settings of a one-epoch pipeline check.
TINY_TRAINING = {
    "data.segment": "0.5",
    "data.valid_segment": "0.5",
    "data.batch_size": "2",
    "data.valid_batch_size": "2",
    "data.num_workers": "0",
    "training.epochs": "1",
    "training.log_every_n_steps": "1",
    "evaluation.n_examples": "1",
}


def tiny_overrides(model_name: str, **extra: str) -> list[str]:
    """Command-line overrides turning a recipe conf into a one-epoch tiny run."""
    tokens = []
    for key, value in {**TINY_TRAINING, **extra}.items():
        tokens += [f"--{key}", value]
    for key, value in TINY_ARGS[model_name].items():
        tokens += [f"--model.args.{key}", str(value)]
    return tokens


def tiny_conf(
    model_name: str = "TDANet",
    model_args: dict | None = None,
    sample_rate: int = 8000,
    fmt: str = "librimix",
) -> dict[str, Any]:
    """A complete, valid conf for tests."""
    return copy.deepcopy(
        {
            "data": {
                "format": fmt,
                "task": "sep_clean",
                "sample_rate": sample_rate,
                "n_src": 2,
                "segment": 0.5,
                "valid_segment": None,
                "batch_size": 1,
                "valid_batch_size": 1,
                "num_workers": 0,
                "dynamic_mixing": False,
                "mixtures_per_epoch": None,
                "speed_perturb": None,
            },
            "model": {
                "name": model_name,
                "args": dict(TINY_ARGS.get(model_name, {}) if model_args is None else model_args),
            },
            "training": {
                "epochs": 1,
                "max_minutes": None,
                "max_steps": None,
                "early_stop_patience": 30,
                "gradient_clip": 5.0,
                "precision": "32-true",
                "save_top_k": 2,
                "accumulate_grad_batches": 1,
                "reference_batch": None,
                "batch_rule": "accumulate",
                "seed": 0,
                "log_every_n_steps": 1,
                "find_unused_parameters": False,
            },
            "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
            "scheduler": {"name": "plateau", "factor": 0.5, "patience": 15, "warmup_steps": None},
            "loss": {"train": "pit_neg_snr", "valid": "pit_neg_sisdr"},
            "evaluation": {
                "metrics": ["si_sdr", "sdr", "stoi"],
                "n_examples": 1,
                "sdr_backend": "mir_eval",
            },
        }
    )


class ScaledMixture(BaseModel):
    """Test model with closed-form scores: estimate ``i`` is ``gain[i] * mixture``.

    SI-SDR, BSS-eval SDR and STOI are invariant to the gain, so every improvement over the
    mixture is exactly 0 dB (0 for STOI). ``nan_after_steps >= 0`` makes the training output NaN
    after that many training forward passes (to test the NaN guard).

    Args:
        n_src: Number of sources.
        sample_rate: Hz.
        nan_after_steps: Training steps before the output turns NaN (-1: never).
    """

    def __init__(self, n_src: int = 2, sample_rate: float = 8000, nan_after_steps: int = -1):
        super().__init__(sample_rate=sample_rate)
        self.n_src = n_src
        self.nan_after_steps = nan_after_steps
        self.gain = torch.nn.Parameter(torch.linspace(0.5, 1.0, n_src))
        self.steps = 0

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, n_src, time)``."""
        if wav.ndim == 1:
            wav = wav[None]
        out = self.gain[None, :, None] * wav[:, None, :]
        if self.training and self.nan_after_steps >= 0:
            self.steps += 1
            if self.steps > self.nan_after_steps:
                out = out * float("nan")
        return out

    def get_model_args(self) -> dict[str, Any]:
        return {
            "n_src": self.n_src,
            "sample_rate": float(self.sample_rate),
            "nan_after_steps": self.nan_after_steps,
        }


class LookupSeparator(BaseModel):
    """Test model whose outputs the test chooses: a mixture of ``lengths[k]`` samples gets the
    estimates stored in row ``k`` of the ``table`` buffer (saved with the model file).

    Tests fill the table with closed-form estimates (the references, swapped, plus noise of a
    chosen SI-SNR...) so the scores evaluation reports can be computed independently.

    Args:
        lengths: Length in samples of each mixture the model knows (all different).
        n_src: Number of sources.
        sample_rate: Hz.
    """

    def __init__(self, lengths: list[int], n_src: int = 2, sample_rate: float = 8000):
        super().__init__(sample_rate=sample_rate)
        if len(set(lengths)) != len(lengths):
            raise ValueError(f"lengths must differ, got {lengths}")
        self.lengths = [int(n) for n in lengths]
        self.n_src = n_src
        self.register_buffer("table", torch.zeros(len(lengths), n_src, max(lengths)))

    def set_estimates(self, length: int, estimates) -> None:
        """Store the ``(n_src, length)`` estimates returned for mixtures of ``length`` samples."""
        self.table[self.lengths.index(length), :, :length] = torch.tensor(np.array(estimates))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, n_src, time)``, the stored estimates for that length."""
        if wav.ndim == 1:
            wav = wav[None]
        length = wav.shape[-1]
        row = self.table[self.lengths.index(length), :, :length]
        return row.expand(wav.shape[0], -1, -1).clone()

    def get_model_args(self) -> dict[str, Any]:
        return {
            "lengths": self.lengths,
            "n_src": self.n_src,
            "sample_rate": float(self.sample_rate),
        }


def register_test_models() -> None:
    """Make the test models known to ``asteroid.models.get`` (idempotent)."""
    from asteroid import models

    for model_class in (ScaledMixture, LookupSeparator):
        try:
            models.get(model_class.__name__)
        except ValueError:
            models.register_model(model_class)
