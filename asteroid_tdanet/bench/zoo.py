"""The models the benchmark compares, built by name at a given sample rate.

Full configurations are the published ones; ``tiny=True`` gives small versions of the same
architectures for smoke tests (their numbers mean nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "MODEL_NAMES",
    "ModelUnavailable",
    "ZooEntry",
    "build_model",
    "model_description",
    "model_label",
    "model_short_label",
]

MODEL_NAMES: tuple[str, ...] = (
    "tdanet",
    "tdanet_large",
    "convtasnet",
    "sepformer",
    "look2hear_reference",
)


class ModelUnavailable(RuntimeError):
    """A model cannot be built here (e.g. an optional dependency is missing)."""


@dataclass(frozen=True)
class ZooEntry:
    """A model of the benchmark.

    Attributes:
        name: Command-line name.
        label: Name printed in tables and plots.
        description: The configuration, in words.
        short: Short name for plots.
    """

    name: str
    label: str
    description: str
    short: str


_ENTRIES = {
    "tdanet": ZooEntry(
        "tdanet", "TDANet (ours)", "4 ms kernel, C=128, N=512, B=16, D=5, 8 heads", "TDANet"
    ),
    "tdanet_large": ZooEntry(
        "tdanet_large",
        "TDANet Large (ours)",
        "2 ms kernel, C=128, N=512, B=16, D=5, 8 heads",
        "TDANet Large",
    ),
    "convtasnet": ZooEntry(
        "convtasnet",
        "Conv-TasNet (Asteroid)",
        "paper config: N=512, L=16, B=128, H=512, Sc=128, P=3, X=8, R=3, gLN",
        "Conv-TasNet",
    ),
    "sepformer": ZooEntry(
        "sepformer",
        "Sepformer (SpeechBrain)",
        "SpeechBrain WSJ0-2mix recipe: N=256, L=16, 2 x (8 intra + 8 inter) layers, K=250",
        "Sepformer",
    ),
    "look2hear_reference": ZooEntry(
        "look2hear_reference",
        "look2hear-reference (our transcription of the released code)",
        "released TDANetBest computation, 4 ms kernel, defects included",
        "look2hear-reference",
    ),
}


def model_label(name: str) -> str:
    """The display label of a benchmark model name."""
    return _ENTRIES[name].label if name in _ENTRIES else name


def model_short_label(name: str) -> str:
    """A short display name for plots."""
    return _ENTRIES[name].short if name in _ENTRIES else name


def model_description(name: str) -> str:
    """The configuration of a benchmark model, in words."""
    return _ENTRIES[name].description if name in _ENTRIES else ""


def build_model(name: str, sample_rate: int, tiny: bool = False, seed: int = 0) -> nn.Module:
    """Build a benchmark model in eval mode, with deterministic random weights.

    Args:
        name: One of :data:`MODEL_NAMES`.
        sample_rate: Sample rate in Hz.
        tiny: Small configurations of the same architectures (smoke tests only).
        seed: Seed of the random initialisation.

    Returns:
        A model mapping (batch, time) to (batch, n_src, time).

    Raises:
        ValueError: for an unknown name.
        ModelUnavailable: if the model cannot be built here (message says why).
    """
    if name not in _ENTRIES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    torch.manual_seed(seed)
    if name in ("tdanet", "tdanet_large"):
        from asteroid_tdanet.models import TDANet

        size = (
            dict(bn_chan=16, hid_chan=32, n_blocks=2, upsampling_depth=3)
            if tiny
            else dict(bn_chan=128, hid_chan=512, n_blocks=16, upsampling_depth=5)
        )
        kernel_ms = 4.0 if name == "tdanet" else 2.0
        model = TDANet(n_src=2, sample_rate=sample_rate, enc_kernel_ms=kernel_ms, **size)
    elif name == "convtasnet":
        from asteroid.models import ConvTasNet

        size = (
            dict(n_filters=32, bn_chan=16, hid_chan=32, skip_chan=16, n_blocks=2, n_repeats=1)
            if tiny
            else {}
        )
        model = ConvTasNet(n_src=2, sample_rate=sample_rate, mask_act="relu", **size)
    elif name == "sepformer":
        from asteroid_tdanet.sepformer import Sepformer

        size = (
            dict(n_filters=16, n_layers=1, n_heads=2, d_ffn=32, chunk_size=50, n_repeats=1)
            if tiny
            else {}
        )
        try:
            model = Sepformer(n_src=2, sample_rate=sample_rate, **size)
        except ImportError as err:
            raise ModelUnavailable(str(err)) from err
    else:
        from asteroid_tdanet.bench.look2hear_reference import Look2HearTDANet

        size = (
            dict(out_channels=16, in_channels=32, num_blocks=2, upsampling_depth=3) if tiny else {}
        )
        model = Look2HearTDANet(sample_rate=sample_rate, enc_kernel_size=4, **size)
    return model.eval()
