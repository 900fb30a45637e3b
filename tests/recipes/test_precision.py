"""Mixed precision in training and evaluation: it reaches Lightning and autocast, outputs stay
finite, and TDANet's fast path (float32 on the CPU only) stays off under autocast."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from fake_trees import make_librimix_tree
from recipe_helpers import tiny_conf

from asteroid_tdanet import masker
from asteroid_tdanet.data.prepare import prepare
from asteroid_tdanet.recipes.config import ConfigError, validate
from asteroid_tdanet.recipes.evaluation import autocast_of, evaluate
from asteroid_tdanet.recipes.training import train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = make_librimix_tree(tmp_path_factory.mktemp("raw"), n_per_split=2, seconds=1.0)
    out = tmp_path_factory.mktemp("data")
    prepare("librimix", root, out, sample_rate=8000, progress=False)
    return out


def no_fast_path(monkeypatch) -> tuple[list[str], list[bool]]:
    """Make the fast path fail loudly if it is entered.

    Returns:
        The fast path's entries, and whether autocast was on at each of the masker's forwards.
    """
    entered: list[str] = []
    autocast: list[bool] = []
    decide = masker.use_fast_path

    def spy(x, module=None):
        autocast.append(torch.is_autocast_enabled("cpu"))
        return decide(x, module)

    def refuse(*args, **kwargs):
        entered.append("fast path")
        raise AssertionError("the fast path ran under mixed precision")

    monkeypatch.setattr(masker, "masker_forward", refuse)
    monkeypatch.setattr(masker, "ublock_forward", refuse)
    monkeypatch.setattr(masker, "use_fast_path", spy)
    return entered, autocast


class Seen(pl.Callback):
    """The Trainer's precision, and whether each training loss was finite."""

    def __init__(self):
        self.precision = None
        self.finite: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.precision = trainer.precision
        self.finite.append(bool(torch.isfinite(outputs["loss"])))


@pytest.mark.slow
def test_mixed_precision_trains_and_evaluates_without_the_fast_path(
    data_dir: Path, tmp_path: Path, monkeypatch
):
    precision = "bf16-mixed"  # (16-mixed: Lightning itself runs bf16-mixed on the CPU)
    entered, autocast = no_fast_path(monkeypatch)
    conf = tiny_conf("TDANet")
    conf["training"]["precision"] = precision
    conf["data"].update(segment=0.25, valid_segment=0.25)
    conf["evaluation"].update(metrics=["si_sdr", "sdr"], n_examples=0, sdr_backend="torchmetrics")
    exp = tmp_path / "exp"
    seen = Seen()
    train(validate(conf), data_dir, exp, gpus="cpu", progress_bar=False, callbacks=[seen])
    assert seen.precision == precision  # what the Trainer ran with
    assert seen.finite and all(seen.finite)  # finite training losses
    assert autocast and all(autocast)  # every forward (training, validation) under autocast
    history = (exp / "train_log" / "history.csv").read_text().splitlines()[1:]
    assert history and all(math.isfinite(float(x)) for x in history[-1].split(",")[1:])

    autocast.clear()
    final = evaluate(exp, data_dir, device="cpu", progress_bar=False, precision=precision)
    assert autocast and all(autocast)
    assert entered == []
    assert math.isfinite(final["si_sdr"]["mean"]) and math.isfinite(final["sdr"]["mean"])
    assert json.loads((exp / "results" / "final_metrics.json").read_text()) == final


def test_float32_evaluation_does_use_the_fast_path(data_dir: Path, tmp_path: Path, monkeypatch):
    # The counterpart of the test above: the same patch does catch the fast path in float32.
    conf = tiny_conf("TDANet")
    conf["data"].update(segment=0.25, valid_segment=0.25)
    conf["evaluation"].update(metrics=["si_sdr"], n_examples=0)
    exp = tmp_path / "exp"
    train(validate(conf), data_dir, exp, gpus="cpu", progress_bar=False)
    entered, _ = no_fast_path(monkeypatch)
    with pytest.raises(AssertionError, match="fast path ran"):
        evaluate(exp, data_dir, device="cpu", progress_bar=False)
    assert entered


def test_autocast_of_each_precision():
    cpu = torch.device("cpu")
    assert not autocast_of("32-true", cpu)._enabled
    assert autocast_of("bf16-mixed", cpu).fast_dtype == torch.bfloat16
    assert autocast_of("16-mixed", cpu).fast_dtype == torch.bfloat16  # as Lightning on the CPU
    with pytest.raises(ConfigError, match="'bf16' is not one of"):
        autocast_of("bf16", cpu)
