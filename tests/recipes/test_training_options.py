"""The conf's training options do what they say, through `train` and Lightning's real Trainer.

Closed-form cases: a model whose validation loss per epoch the test chooses
(`ScriptedValidation`: early stopping, the plateau scheduler, the best checkpoint) and one SGD
or Adam step on data whose every training crop is the whole file (gradient clipping,
accumulation, optimizers and weight decay: the step follows from the gradient, which the test
computes itself).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dist_helpers import clean_env
from recipe_helpers import REPO, tiny_conf
from training_helpers import equal_length_data, register_training_models

from asteroid_tdanet.data import make_dataset
from asteroid_tdanet.io import load_model_file
from asteroid_tdanet.recipes.config import validate
from asteroid_tdanet.recipes.training import make_loss, read_history, train

SAMPLES = 4000  # every file: 0.5 s at 8 kHz
N_ITEMS = 4  # per split
GAINS = [0.1, 1.0]  # initial gains: the loss pulls the first up and the second down


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return equal_length_data(tmp_path_factory.mktemp("equal"), N_ITEMS, SAMPLES)


def make_conf(epochs: int = 1, *, levels=(0.0,), batch: int = N_ITEMS, **model) -> dict:
    """SGD without schedule, clipping or early stopping; whole-file crops."""
    register_training_models()
    args = {"levels": list(levels), "steps_per_epoch": N_ITEMS // batch, "gains": GAINS, **model}
    conf = tiny_conf("ScriptedValidation", args)
    conf["data"].update(segment=SAMPLES / 8000, batch_size=batch)
    conf["training"].update(
        epochs=epochs, early_stop_patience=None, gradient_clip=None, save_top_k=1
    )
    conf["optim"] = {"name": "sgd", "lr": 0.1, "weight_decay": 0.0}
    conf["scheduler"] = {"name": "none", "factor": None, "patience": None, "warmup_steps": None}
    return conf


def run(conf: dict, data_dir: Path, exp: Path) -> dict:
    train(validate(conf), data_dir, exp, gpus="cpu", progress_bar=False)
    return torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def gains_of(state: dict) -> torch.Tensor:
    return state["state_dict"]["model.gain"].double()


def gradient(data_dir: Path, gains=GAINS, items: slice = slice(None)) -> torch.Tensor:
    """d(training loss)/d(gains) on the training split: what one step of batch 4 sees."""
    train_set = make_dataset("librimix", data_dir, "train", sample_rate=8000, segment=0.5)
    batch = [train_set[i] for i in range(len(train_set))][items]
    mixture = torch.stack([m for m, _ in batch])
    sources = torch.stack([s for _, s in batch])
    gain = torch.tensor(gains, requires_grad=True)
    loss = make_loss("pit_neg_snr")(gain[None, :, None] * mixture[:, None], sources)
    loss.backward()
    return gain.grad.double()


def training_loss(data_dir: Path, gains=GAINS) -> float:
    """Mean training loss over the training split at `gains`."""
    train_set = make_dataset("librimix", data_dir, "train", sample_rate=8000, segment=0.5)
    loss = make_loss("pit_neg_snr")
    gain = torch.tensor(gains)[:, None]
    losses = [float(loss(gain[None] * m[None, None], s[None])) for m, s in train_set]
    return sum(losses) / len(losses)


def val_losses(exp: Path) -> list[float]:
    return [r["val_loss"] for r in read_history(exp / "train_log" / "history.csv")]


def assert_ordered_like(losses: list[float], levels: list[float]) -> None:
    """The scripted model's losses follow its noise levels (the premise of these tests)."""
    for a, b, la, lb in zip(losses, losses[1:], levels, levels[1:], strict=False):
        assert (a < b) == (la < lb) and abs(a - b) > 0.05, (losses, levels)


@pytest.mark.parametrize("patience, stop_after", [(2, 4), (3, 5)])
def test_early_stopping_waits_patience_epochs_without_a_lower_val_loss(
    data_dir: Path, tmp_path: Path, patience: int, stop_after: int
):
    # Lowest at epoch 2, then only higher: stop after `patience` epochs without improving. A
    # monitor that wanted the highest loss would stop after epoch 2 (epochs 1, 2 "got worse").
    levels = [0.5, 0.2, 0.1, 0.3, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4]
    conf = make_conf(epochs=10, levels=levels)
    conf["training"]["early_stop_patience"] = patience
    exp = tmp_path / "exp"
    state = run(conf, data_dir, exp)
    losses = val_losses(exp)
    assert len(losses) == stop_after + 1 and state["epoch"] == stop_after
    assert_ordered_like(losses, levels)


def test_the_plateau_scheduler_multiplies_the_rate_by_factor_after_patience_bad_epochs(
    data_dir: Path, tmp_path: Path
):
    # patience 1: the rate drops after the second epoch in a row without a lower val_loss.
    levels = [0.5, 0.2, 0.3, 0.4, 0.1, 0.3, 0.3, 0.3]
    conf = make_conf(epochs=8, levels=levels)
    conf["optim"]["lr"] = 1e-3
    conf["scheduler"].update(name="plateau", factor=0.3, patience=1)
    exp = tmp_path / "exp"
    state = run(conf, data_dir, exp)
    history = read_history(exp / "train_log" / "history.csv")
    # The rate each epoch trained with: epochs 2-3 and 5-6 are the bad pairs.
    expected = [1e-3] * 4 + [3e-4] * 3 + [9e-5]
    assert [r["lr"] for r in history] == pytest.approx(expected, rel=1e-3)
    # ... and after epoch 7 (bad, bad: 5, 6 reset; 7 is the first of a new pair): unchanged.
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(9e-5)
    assert_ordered_like([r["val_loss"] for r in history[:6]], levels[:6])


def test_best_model_is_the_epoch_of_the_lowest_val_loss_not_the_last(
    data_dir: Path, tmp_path: Path
):
    levels = [0.3, 0.05, 0.2, 0.5]  # lowest at epoch 1
    conf = make_conf(epochs=4, levels=levels)
    conf["training"]["save_top_k"] = 2
    exp = tmp_path / "exp"
    last = run(conf, data_dir, exp)
    assert_ordered_like(val_losses(exp), levels)
    package = load_model_file(exp / "best_model.pth")
    assert package["infos"]["training"]["epoch"] == 1
    (epoch1,) = (exp / "checkpoints").glob("epoch=1-*.ckpt")
    best = torch.load(epoch1, map_location="cpu", weights_only=True)
    torch.testing.assert_close(package["state_dict"]["gain"], best["state_dict"]["model.gain"])
    # SGD moved the gains every epoch: the last epoch's weights are others.
    assert not torch.allclose(package["state_dict"]["gain"], last["state_dict"]["model.gain"])
    best_k = json.loads((exp / "best_k_models.json").read_text())
    assert min(best_k, key=best_k.get) == epoch1.name


def test_gradient_clipping_bounds_the_norm_of_the_step(data_dir: Path, tmp_path: Path):
    # One SGD step: without clipping it is -lr g; clipped, -lr c g / |g| (the norm of the whole
    # gradient, not each value, is capped: both components are above c here).
    lr, clip = 0.1, 1e-3
    g = gradient(data_dir)
    assert (g.abs() > 100 * clip).all()
    start = torch.tensor(GAINS, dtype=torch.float64)
    conf = make_conf(epochs=1)
    free = gains_of(run(conf, data_dir, tmp_path / "free"))
    torch.testing.assert_close(free, start - lr * g, rtol=0, atol=1e-6)
    conf["training"]["gradient_clip"] = clip
    clipped = gains_of(run(conf, data_dir, tmp_path / "clipped"))
    torch.testing.assert_close(clipped, start - lr * clip * g / g.norm(), rtol=1e-4, atol=1e-9)


def test_accumulated_batches_step_as_one_batch_of_their_sum(data_dir: Path, tmp_path: Path):
    # 2 accumulated batches of 2 == one batch of 4: the same SGD step, -lr times the gradient
    # of the mean loss over the 4 mixtures (one batch of 2 alone would step elsewhere).
    lr = 0.1
    start = torch.tensor(GAINS, dtype=torch.float64)
    full = start - lr * gradient(data_dir)
    halves = [start - lr * gradient(data_dir, items=s) for s in (slice(0, 2), slice(2, 4))]
    assert all((h - full).abs().max() > 1e-3 for h in halves)

    one = make_conf(epochs=1, batch=4)
    one["training"]["max_steps"] = 1
    accumulated = make_conf(epochs=1, batch=2)
    accumulated["training"].update(max_steps=1, accumulate_grad_batches=2)
    for name, conf in (("one", one), ("accumulated", accumulated)):
        state = run(conf, data_dir, tmp_path / name)
        assert state["global_step"] == 1
        torch.testing.assert_close(gains_of(state), full, rtol=0, atol=1e-6)


def one_step(name: str, lr: float, wd: float, theta: torch.Tensor, g: torch.Tensor):
    """Closed form of the first step of each optimizer (torch's defaults otherwise)."""
    if name == "sgd":  # weight decay is an L2 term in the gradient
        return theta - lr * (g + wd * theta)
    if name == "adam":  # first Adam step: bias-corrected m / sqrt(v) = g / |g|
        coupled = g + wd * theta
        return theta - lr * coupled / (coupled.abs() + 1e-8)
    # AdamW: the decay shrinks the weights directly, the step sees the plain gradient
    return theta * (1 - lr * wd) - lr * g / (g.abs() + 1e-8)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_each_optimizer_takes_its_closed_form_first_step(data_dir: Path, tmp_path: Path, name: str):
    lr, wd = 0.01, 50.0  # wd * theta flips the sign of the first gradient (Adam sees it)
    g = gradient(data_dir)
    theta = torch.tensor(GAINS, dtype=torch.float64)
    expected = one_step(name, lr, wd, theta, g)
    # The case tells every optimizer apart, and weight decay from none.
    for other in {"sgd", "adam", "adamw"} - {name}:
        assert (one_step(other, lr, wd, theta, g) - expected).abs().max() > 1e-3
    assert (one_step(name, lr, 0.0, theta, g) - expected).abs().max() > 1e-3

    conf = make_conf(epochs=1)
    conf["optim"] = {"name": name, "lr": lr, "weight_decay": wd}
    state = run(conf, data_dir, tmp_path / name)
    assert state["global_step"] == 1
    torch.testing.assert_close(gains_of(state), expected, rtol=0, atol=1e-6)


# --- DDP over two CPU processes (gloo) --------------------------------------------------------

DDP_SCRIPT = """
import json, os, sys
sys.path.insert(0, {tests!r})
from training_helpers import register_training_models
from asteroid_tdanet.recipes.training import NonFiniteLossError, train

register_training_models()
conf = json.loads(open({conf!r}).read())
try:
    train(conf, {data!r}, {exp!r}, gpus="cpu", cpu_procs=2, progress_bar=False)
except NonFiniteLossError as err:
    print(f"rank {{os.environ.get('LOCAL_RANK', '0')}} stopped: {{err}}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)  # skip the interpreter's slow teardown (seconds): nothing is left to write
"""


def si_snr_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    estimate = estimate.double() - estimate.double().mean()
    reference = reference.double() - reference.double().mean()
    target = (estimate @ reference) / (reference @ reference) * reference
    return float(10 * torch.log10(target.pow(2).sum() / (estimate - target).pow(2).sum()))


@pytest.mark.slow
def test_ddp_validation_is_the_mean_over_all_ranks_and_a_nan_on_one_rank_stops_all(
    data_dir: Path, tmp_path: Path
):
    # Two processes, each validating 2 of the 4 mixtures (Lightning's DistributedSampler: rank
    # r gets r, r + 2). The model validates with gain * mixture, so val_loss is -SI-SNR of the
    # mixture against its sources: known per mixture, whatever training did.
    valid = make_dataset("librimix", data_dir, "valid", sample_rate=8000)
    per_item = [-sum(si_snr_db(mixture, s) for s in sources) / 2 for mixture, sources in valid]
    overall = sum(per_item) / 4
    rank0_alone = (per_item[0] + per_item[2]) / 2
    assert abs(overall - rank0_alone) > 1e-2

    # Rank 1's training output turns NaN at its first step of epoch 1 (2 steps an epoch).
    conf = make_conf(epochs=3, batch=1, steps_per_epoch=2, nan_after_steps=2, nan_rank=1)
    conf["optim"]["lr"] = 1e-9
    exp = tmp_path / "exp"
    (tmp_path / "conf.json").write_text(json.dumps(validate(conf)))
    script = tmp_path / "ddp_train.py"
    script.write_text(
        DDP_SCRIPT.format(
            tests=str(REPO / "tests"),
            conf=str(tmp_path / "conf.json"),
            data=str(data_dir),
            exp=str(exp),
        )
    )
    env = {**clean_env(), "PYTHONWARNINGS": "ignore"}  # no launcher variables of the caller
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env
    )
    log = out.stdout + out.stderr
    assert out.returncode == 3, log[-4000:]
    # Both processes stop on the NaN (none waits forever for the other); rank 0's own loss was
    # finite, and its message says the NaN came from another process.
    assert "rank 1 stopped: training loss is nan" in log, log[-4000:]
    assert "rank 0 stopped: training loss is not finite on another process" in log, log[-4000:]

    history = read_history(exp / "train_log" / "history.csv")
    assert [r["epoch"] for r in history] == [0]
    assert history[0]["val_loss"] == pytest.approx(overall, abs=1e-4)
    # The training loss too is the mean over the 4 mixtures of both processes (lr 1e-9: the
    # gains stay the initial ones).
    assert history[0]["train_loss"] == pytest.approx(training_loss(data_dir), abs=1e-4)
    # What the checkpoint callback monitored (Lightning's sync_dist mean) is the same value.
    (first,) = (exp / "checkpoints").glob("epoch=0-*.ckpt")
    state = torch.load(first, map_location="cpu", weights_only=True)
    (monitor,) = [v for k, v in state["callbacks"].items() if "'monitor': 'val_loss'" in k]
    assert float(monitor["best_model_score"]) == pytest.approx(overall, abs=1e-4)
