"""The effective batch: what each training.batch_rule changes, and what reaches the Trainer."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml
from fake_trees import make_librimix_tree
from recipe_helpers import register_test_models, tiny_conf

from asteroid_tdanet.data.prepare import prepare
from asteroid_tdanet.recipes.batch import plan_batch
from asteroid_tdanet.recipes.config import ConfigError, validate
from asteroid_tdanet.recipes.training import train


def conf_of(rule: str, reference: int | None = 4, batch: int = 1, segment=3.0) -> dict:
    conf = tiny_conf()
    conf["data"].update(batch_size=batch, segment=segment)
    conf["training"].update(reference_batch=reference, batch_rule=rule)
    return validate(conf)


@pytest.mark.parametrize("rule", ["accumulate", "per_device", "scale_lr", "none"])
def test_the_reference_batch_changes_nothing(rule: str):
    plan = plan_batch(conf_of(rule), 4)  # the authors' 1 x 4 GPUs
    assert (plan.batch_size, plan.accumulate, plan.lr, plan.effective) == (1, 1, 1e-3, 4)
    assert plan.warning is None and plan.notes == []


def test_accumulate_keeps_the_reference_on_fewer_devices():
    plan = plan_batch(conf_of("accumulate"), 1)
    assert (plan.batch_size, plan.accumulate, plan.lr, plan.effective) == (1, 4, 1e-3, 4)
    assert "accumulate_grad_batches 1 -> 4" in plan.notes[0] and plan.warning is None
    assert plan_batch(conf_of("accumulate"), 2).accumulate == 2


def test_per_device_keeps_the_reference_with_a_larger_batch():
    plan = plan_batch(conf_of("per_device"), 2)
    assert (plan.batch_size, plan.accumulate, plan.effective) == (2, 1, 4)
    assert "data.batch_size 1 -> 2" in plan.notes[0]


def test_scale_lr_scales_linearly():
    plan = plan_batch(conf_of("scale_lr"), 8)
    assert plan.effective == 8 and plan.lr == pytest.approx(2e-3)
    assert "optim.lr 0.001 -> 0.002" in plan.notes[0] and plan.warning is None


@pytest.mark.parametrize(
    ("rule", "processes", "segment", "why"),
    [
        ("accumulate", 8, 3.0, "batch_size 1 x 8 process(es) does not divide 4"),
        ("per_device", 8, 3.0, "8 process(es) x accumulate 1 does not divide 4"),
        ("per_device", 2, None, "whole utterances"),
        ("none", 8, 3.0, "training.batch_rule is none"),
    ],
)
def test_a_batch_that_cannot_be_kept_is_a_warning_with_the_scaled_lr(
    rule: str, processes: int, segment, why: str
):
    plan = plan_batch(conf_of(rule, segment=segment), processes)
    assert (plan.batch_size, plan.accumulate, plan.lr) == (1, 1, 1e-3)  # nothing changed
    assert plan.warning is not None and why in plan.warning
    assert f"--optim.lr {1e-3 * processes / 4:g}" in plan.warning


def test_no_reference_no_check():
    plan = plan_batch(conf_of("accumulate", reference=None), 8)
    assert plan.effective == 8 and plan.warning is None


def test_the_reference_batch_is_checked():
    with pytest.raises(ConfigError, match="reference_batch must be >= 1"):
        conf_of("accumulate", reference=0)
    conf = tiny_conf()
    conf["training"]["batch_rule"] = "double"
    with pytest.raises(ConfigError, match="batch_rule: 'double' is not one of"):
        validate(conf)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = make_librimix_tree(tmp_path_factory.mktemp("raw"), n_per_split=3, seconds=1.0)
    out = tmp_path_factory.mktemp("data")
    prepare("librimix", root, out, sample_rate=8000, progress=False)
    return out


def test_the_plan_reaches_the_trainer_and_the_conf_file_keeps_the_users(
    data_dir: Path, tmp_path: Path, caplog
):
    register_test_models()
    conf = tiny_conf("ScaledMixture", {})
    conf["training"].update(reference_batch=2, batch_rule="accumulate", epochs=1)
    exp = tmp_path / "exp"
    with caplog.at_level(logging.INFO, logger="asteroid_tdanet.recipes.training"):
        train(validate(conf), data_dir, exp, gpus="cpu", progress_bar=False)
    # 3 training mixtures of batch 1, 2 accumulated: optimizer steps after batches 2 and 3.
    last = torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2
    assert "world size 1; per-device batch 1 x accumulate 2 -> effective batch 2" in caplog.text
    saved = yaml.safe_load((exp / "conf.yml").read_text())
    assert saved["training"]["accumulate_grad_batches"] == 1  # re-planned on every launch
