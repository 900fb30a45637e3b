"""Stage 2 library: experiment directory rules, losses, training, resume, NaN guard."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from fake_trees import make_librimix_tree
from recipe_helpers import register_test_models, tiny_conf

from asteroid_tdanet.data.prepare import prepare
from asteroid_tdanet.io import load_model, load_model_file
from asteroid_tdanet.recipes.config import ConfigError, dump_conf, validate
from asteroid_tdanet.recipes.training import (
    ExperimentExistsError,
    NonFiniteLossError,
    describe_devices,
    make_loss,
    prepare_exp_dir,
    read_history,
    train,
    trainer_devices,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = make_librimix_tree(tmp_path_factory.mktemp("raw"), n_per_split=3, seconds=1.0)
    out = tmp_path_factory.mktemp("data")
    prepare("librimix", root, out, sample_rate=8000, progress=False)
    return out


def scaled_conf(epochs: int, nan_after_steps: int = -1) -> dict:
    register_test_models()
    conf = tiny_conf("ScaledMixture", {"nan_after_steps": nan_after_steps})
    conf["training"]["epochs"] = epochs
    return validate(conf)


def test_pit_neg_snr_matches_the_closed_form():
    torch.manual_seed(0)
    # Zero-mean signals: Asteroid's losses remove the mean first.
    sources = torch.randn(1, 2, 4000)
    sources -= sources.mean(-1, keepdim=True)
    noise = 0.1 * torch.randn(1, 2, 4000)
    noise -= noise.mean(-1, keepdim=True)
    # Estimates in the other order: PIT must find the swap.
    estimates = (sources + noise).flip(1)
    snr = 10 * torch.log10(sources.pow(2).sum(-1) / noise.pow(2).sum(-1))
    loss = make_loss("pit_neg_snr")(estimates, sources)
    assert loss.item() == pytest.approx(-snr.mean().item(), abs=1e-4)
    # SI-SDR of a rescaled source is unchanged: same target, estimate x3.
    sisdr = make_loss("pit_neg_sisdr")(3 * estimates, sources)
    assert sisdr.item() < loss.item() + 0.5  # close to -SNR (noise is almost orthogonal)


def _zero_mean(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def _db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(num.pow(2).sum(-1) / den.pow(2).sum(-1))


def test_each_conf_loss_name_is_its_loss():
    # Estimates 3 s + n (n orthogonal to both sources), swapped: the three losses differ here
    # and each follows from its definition (Asteroid's pairwise losses remove the mean first).
    gen = torch.Generator().manual_seed(0)
    sources = _zero_mean(torch.randn(1, 2, 4000, generator=gen, dtype=torch.float64))
    basis, _ = torch.linalg.qr(torch.cat([torch.ones(1, 4000), sources[0]]).T)
    noise = torch.randn(2, 4000, generator=gen, dtype=torch.float64)
    noise = (noise - (noise @ basis) @ basis.T)[None]
    estimates = 3 * sources + noise
    target = 3 * sources  # the scaled reference that SI-SDR and SD-SDR project on
    expected = {
        "pit_neg_snr": -_db(sources, estimates - sources).mean(),
        "pit_neg_sisdr": -_db(target, estimates - target).mean(),
        "pit_neg_sdsdr": -_db(target, estimates - sources).mean(),
    }
    assert len({round(v.item(), 3) for v in expected.values()}) == 3
    for name, value in expected.items():
        loss = make_loss(name)(estimates.flip(1).float(), sources.float())
        assert loss.item() == pytest.approx(value.item(), abs=1e-3), name


def test_conf_loss_names_reach_training_and_validation(data_dir: Path, tmp_path: Path):
    # ScaledMixture outputs g_k * mixture (g = 0.5, 1.0); with whole utterances and a learning
    # rate too small to move g, both logged losses follow from the files: the training loss is
    # -SNR (gain-dependent), the validation loss -SI-SNR (gain-free), as the conf names them.
    from asteroid_tdanet.data import make_dataset

    conf = scaled_conf(epochs=1)
    conf["data"]["segment"] = None
    conf["optim"]["lr"] = 1e-12
    exp = tmp_path / "exp"
    train(validate(conf), data_dir, exp, progress_bar=False)
    history = read_history(exp / "train_log" / "history.csv")

    def losses(split: str) -> tuple[float, float]:
        snr, si_snr = [], []
        for mixture, refs in make_dataset("librimix", data_dir, split, sample_rate=8000):
            mix = _zero_mean(mixture.double())
            refs = _zero_mean(refs.double())
            gains = torch.tensor([0.5, 1.0], dtype=torch.float64)[:, None]
            outs = gains * mix
            snr.append(max(_db(refs[p], outs - refs[p]).mean() for p in ([0, 1], [1, 0])))
            alpha = (refs @ mix) / refs.pow(2).sum(-1)
            si_snr.append(_db(alpha[:, None] * refs, mix - alpha[:, None] * refs).mean())
        return -float(torch.stack(snr).mean()), -float(torch.stack(si_snr).mean())

    train_snr, _ = losses("train")
    _, valid_si_snr = losses("valid")
    assert history[0]["train_loss"] == pytest.approx(train_snr, abs=1e-3)
    assert history[0]["val_loss"] == pytest.approx(valid_si_snr, abs=1e-3)


def test_existing_experiments_are_never_reused_silently(tmp_path: Path):
    conf = validate(tiny_conf())
    exp = tmp_path / "exp" / "a"
    assert prepare_exp_dir(exp, conf, resume=False, overwrite=False) is None
    (exp / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        prepare_exp_dir(exp, conf, resume=True, overwrite=False)
    (exp / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ExperimentExistsError, match="--resume yes"):
        prepare_exp_dir(exp, conf, resume=False, overwrite=False)
    dump_conf(conf, exp / "conf.yml")
    assert prepare_exp_dir(exp, conf, resume=True, overwrite=False) == exp / "checkpoints/last.ckpt"
    changed = validate(
        {**conf, "model": {"name": "TDANet", "args": {**conf["model"]["args"], "n_blocks": 3}}}
    )
    with pytest.raises(ConfigError, match="model.args.n_blocks"):
        prepare_exp_dir(exp, changed, resume=True, overwrite=False)
    longer = validate({**conf, "training": {**conf["training"], "epochs": 9}})
    assert prepare_exp_dir(exp, longer, resume=True, overwrite=False) is not None
    with pytest.raises(ValueError, match="either"):
        prepare_exp_dir(exp, conf, resume=True, overwrite=True)
    assert prepare_exp_dir(exp, conf, resume=False, overwrite=True) is None
    assert not exp.exists()


def test_gpus_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        trainer_devices("0", 1)
    assert trainer_devices("", 2) == {"accelerator": "cpu", "devices": 2}
    # The default falls back to the CPU, and says why.
    devices = trainer_devices("auto", 1)
    assert devices == {"accelerator": "cpu", "devices": 1}
    assert "no GPU is visible" in describe_devices(devices, "auto")


def test_visible_gpus_are_used_by_default_and_cpu_can_be_forced(monkeypatch):
    """Which devices Lightning gets (the machine's CUDA answers are stood in for)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Card{i}")
    auto = trainer_devices("auto", 1)
    assert auto == {"accelerator": "gpu", "devices": [0, 1]}
    assert describe_devices(auto, "auto") == (
        "training on 2 GPU(s): cuda:0 (Card0), cuda:1 (Card1); every visible GPU (--gpus auto)"
    )
    assert trainer_devices("1", 1) == {"accelerator": "gpu", "devices": [1]}
    for cpu in ("", "cpu", "CPU"):
        assert trainer_devices(cpu, 1) == {"accelerator": "cpu", "devices": 1}
    with pytest.raises(RuntimeError, match=r"GPU\(s\) \[2\] not visible"):
        trainer_devices("0,2", 1)
    with pytest.raises(ValueError, match="expected GPU ids"):
        trainer_devices("first", 1)


def test_train_writes_the_experiment_and_resumes(data_dir: Path, tmp_path: Path):
    exp = tmp_path / "exp" / "scaled"
    best = train(scaled_conf(epochs=2), data_dir, exp, progress_bar=False)
    assert best == exp / "best_model.pth"
    for name in (
        "conf.yml",
        "best_k_models.json",
        "training_curve.png",
        "checkpoints/last.ckpt",
        "train_log/history.csv",
    ):
        assert (exp / name).is_file(), name
    assert list((exp / "train_log").glob("events.out.tfevents.*"))
    history = read_history(exp / "train_log" / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1]
    best_k = json.loads((exp / "best_k_models.json").read_text())
    assert len(best_k) == 2 and min(best_k.values()) == pytest.approx(
        min(r["val_loss"] for r in history), abs=1e-4
    )
    package = load_model_file(best)  # weights_only=True
    assert package["model_name"] == "ScaledMixture"
    # The training set's get_infos(), as Asteroid's train.py stores them.
    assert package["dataset"] == "Libri2Mix" and package["task"] == "sep_clean"
    assert package["licenses"][0]["title_link"] == "http://www.openslr.org/12"
    assert package["infos"]["training"]["conf"]["training"]["epochs"] == 2
    model = load_model(best)
    assert model(torch.randn(1, 800)).shape == (1, 2, 800)

    with pytest.raises(ExperimentExistsError):
        train(scaled_conf(epochs=2), data_dir, exp, progress_bar=False)
    train(scaled_conf(epochs=3), data_dir, exp, resume=True, progress_bar=False)
    history = read_history(exp / "train_log" / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1, 2]  # continued, no epoch lost or repeated
    last = torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 2 and [r["epoch"] for r in last["history"]] == [0, 1, 2]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir: Path, tmp_path: Path):
    exp = tmp_path / "exp" / "nan"
    steps_per_epoch = 3  # 3 training mixtures, batch 1
    conf = scaled_conf(epochs=4, nan_after_steps=steps_per_epoch)
    with pytest.raises(NonFiniteLossError, match="training loss is nan.*last.ckpt"):
        train(conf, data_dir, exp, progress_bar=False)
    last = torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
    assert [r["epoch"] for r in last["history"]] == [0]
    assert math.isfinite(last["history"][0]["val_loss"])
    assert not (exp / "best_model.pth").exists()


def test_the_time_cap_stops_training_and_keeps_a_model(data_dir: Path, tmp_path: Path):
    conf = scaled_conf(epochs=1000)
    conf["training"]["max_minutes"] = 0.0005  # 30 ms: stops within the first epochs
    exp = tmp_path / "exp" / "capped"
    train(conf, data_dir, exp, progress_bar=False)
    state = torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["epoch"] < 999
    assert (exp / "best_model.pth").is_file()
    assert read_history(exp / "train_log" / "history.csv")  # the partial epoch was validated


def test_loss_is_float32_under_bf16_autocast():
    from asteroid.models import ConvTasNet

    from asteroid_tdanet.recipes.training import _system_class, make_loss

    model = ConvTasNet(n_src=2, n_filters=16, bn_chan=8, hid_chan=16, n_blocks=1, n_repeats=1)
    system = _system_class()(
        model=model,
        optimizer=torch.optim.Adam(model.parameters()),
        loss_func=make_loss("pit_neg_snr"),
        valid_loss_func=make_loss("pit_neg_sisdr"),
        train_loader=None,
    )
    batch = (torch.randn(2, 800), torch.randn(2, 2, 800))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, count = system.common_step(batch, 0)
    assert loss.dtype == torch.float32 and count == 2


def dynamic_conf(epochs: int) -> dict:
    conf = scaled_conf(epochs)
    conf["data"].update(dynamic_mixing=True, mixtures_per_epoch=4, speed_perturb=[0.95, 1.05])
    return validate(conf)


def test_loaders_of_dynamic_mixing(data_dir: Path):
    from asteroid_tdanet.data import DynamicMixingDataset, DynamicMixingSampler
    from asteroid_tdanet.recipes.training import make_loaders

    conf = dynamic_conf(1)
    conf["data"]["batch_size"] = 2
    train_loader, valid_loader = make_loaders(conf, data_dir, pin_memory=False)
    assert isinstance(train_loader.dataset, DynamicMixingDataset)
    assert isinstance(train_loader.sampler, DynamicMixingSampler)
    assert len(train_loader) == 2 and train_loader.dataset.speeds == (0.95, 1.05)
    mixture, sources = next(iter(train_loader))
    assert mixture.shape == (2, 4000) and sources.shape == (2, 2, 4000)
    assert len(valid_loader.dataset) == 3  # validation: the fixed mixtures
    conf["data"].update(dynamic_mixing=False, mixtures_per_epoch=None)
    train_loader, _ = make_loaders(conf, data_dir, pin_memory=False)
    assert train_loader.dataset.speeds == (0.95, 1.05)  # fixed mixtures, perturbed and re-mixed
    mixture, sources = next(iter(train_loader))
    torch.testing.assert_close(mixture, sources.sum(1))


def test_a_resumed_dynamic_mixing_run_ends_where_an_uninterrupted_one_does(
    data_dir: Path, tmp_path: Path
):
    straight = tmp_path / "straight"
    train(dynamic_conf(epochs=3), data_dir, straight, progress_bar=False)
    split = tmp_path / "split"
    train(dynamic_conf(epochs=2), data_dir, split, progress_bar=False)
    train(dynamic_conf(epochs=3), data_dir, split, resume=True, progress_bar=False)
    a, b = (
        torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        for d in (straight, split)
    )
    assert a["epoch"] == b["epoch"] == 2
    # Same mixtures in the same order after the resume: the same weights and losses.
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(value, b["state_dict"][key], rtol=0, atol=0)
    assert a["history"] == b["history"]
