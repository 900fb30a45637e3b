"""Conf schema, validation and typed command-line overrides; every committed recipe conf."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from recipe_helpers import CONFS, RECIPES, REPO, tiny_conf

from asteroid_tdanet.recipes import config
from asteroid_tdanet.recipes.config import ConfigError, apply_overrides, load_conf, validate

ALL_CONFS = sorted((REPO / "egs").glob("*/TDANet/conf/*.yml"))


def _registered(name: str) -> bool:
    try:
        config._model_class(name)
    except ConfigError:
        return False
    return True


def test_every_recipe_has_the_four_confs():
    for recipe in RECIPES:
        for name in CONFS:
            assert (REPO / "egs" / recipe / "TDANet" / "conf" / f"{name}.yml").is_file()
    assert (REPO / "egs" / "mini2mix" / "TDANet" / "conf" / "tdanet.yml").is_file()


@pytest.mark.parametrize("path", ALL_CONFS, ids=lambda p: f"{p.parents[2].name}/{p.name}")
def test_committed_confs_are_valid_and_write_floats_as_floats(path: Path):
    raw = yaml.safe_load(path.read_text())
    validate(raw, str(path))
    # The file itself (not only the validated copy) writes float values as floats.
    for section, fields in config.SCHEMA.items():
        for key, field in fields.items():
            if field.type is float and raw[section][key] is not None:
                assert isinstance(raw[section][key], float), f"{path}: {section}.{key}"
    if _registered(raw["model"]["name"]):
        load_conf(path)  # model.args checked against the constructor
        arg_fields = config.model_arg_fields(raw["model"]["name"])
        for key, value in raw["model"]["args"].items():
            if arg_fields[key].type is float:
                assert isinstance(value, float), f"{path}: model.args.{key}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_benchmark_confs_follow_the_authors(recipe: str):
    rate, segment = (16000, 2.0) if recipe == "lrs2_2mix" else (8000, 3.0)
    for name in ("tdanet", "tdanet_large", "convtasnet"):
        conf = yaml.safe_load(
            (REPO / "egs" / recipe / "TDANet" / "conf" / f"{name}.yml").read_text()
        )
        assert conf["data"]["sample_rate"] == rate and conf["data"]["segment"] == segment
        assert conf["optim"] == {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}
        assert conf["scheduler"] == {"name": "plateau", "factor": 0.5, "patience": 15}
        assert conf["training"]["early_stop_patience"] == 30
        assert conf["training"]["epochs"] == 500
        assert conf["training"]["gradient_clip"] == 5.0
        assert conf["loss"] == {"train": "pit_neg_snr", "valid": "pit_neg_sisdr"}
    large = yaml.safe_load((REPO / "egs" / recipe / "TDANet/conf/tdanet_large.yml").read_text())
    assert (
        large["model"]["name"] == "TDANetLarge" and large["model"]["args"]["enc_kernel_ms"] == 2.0
    )


def test_wham_separates_noisy_mixtures():
    conf = yaml.safe_load((REPO / "egs/wham/TDANet/conf/tdanet.yml").read_text())
    assert conf["data"]["format"] == "wham" and conf["data"]["task"] == "sep_noisy"


def test_overrides_take_types_from_the_schema_not_from_yaml():
    conf = tiny_conf()
    conf["data"]["segment"] = 3  # an int in YAML must not make the override an int
    conf = validate(conf)
    assert conf["data"]["segment"] == 3.0 and isinstance(conf["data"]["segment"], float)
    out = apply_overrides(
        conf,
        [
            "--data.segment",
            "1.5",
            "--optim.lr=5e-4",
            "--training.max_minutes",
            "null",
            "--training.find_unused_parameters",
            "yes",
            "--evaluation.metrics",
            "si_sdr,stoi",
        ],
    )
    assert out["data"]["segment"] == 1.5
    assert out["optim"]["lr"] == 5e-4
    assert out["training"]["max_minutes"] is None
    assert out["training"]["find_unused_parameters"] is True
    assert out["evaluation"]["metrics"] == ["si_sdr", "stoi"]
    assert conf["optim"]["lr"] == 1e-3  # the input is not modified


def test_model_arg_overrides_take_types_from_the_constructor():
    conf = validate(tiny_conf("TDANet"))
    out = apply_overrides(
        conf,
        [
            "--model.args.n_blocks",
            "3",
            "--model.args.dropout",
            "0",
            "--model.args.checkpoint_blocks",
            "true",
        ],
    )
    args = out["model"]["args"]
    assert args["n_blocks"] == 3 and isinstance(args["n_blocks"], int)
    assert args["dropout"] == 0.0 and isinstance(args["dropout"], float)
    assert args["checkpoint_blocks"] is True
    with pytest.raises(ConfigError, match="n_blocks"):
        apply_overrides(conf, ["--model.args.n_blocks", "2.5"])
    with pytest.raises(ConfigError, match="no argument 'n_blockz'"):
        apply_overrides(conf, ["--model.args.n_blockz", "2"])


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["--training.epochs", "2.5"], "not a valid int"),
        (["--training.epoch", "2"], "unknown conf key"),
        (["--optim.name", "adagrad"], "not one of"),
        (["--data.batch_size"], "missing value"),
        (["data.batch_size", "2"], "expected --section.key"),
        (["--training.find_unused_parameters", "maybe"], "not a valid bool"),
    ],
)
def test_bad_overrides_name_the_key(tokens, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(validate(tiny_conf()), tokens)


def test_validation_errors_name_the_problem(tmp_path: Path):
    conf = tiny_conf()
    bad = copy.deepcopy(conf)
    bad["optim"]["lr"] = "1e-3"  # what YAML 1.1 makes of 1e-3
    with pytest.raises(ConfigError, match=r"optim.lr.*1.0e-3"):
        validate(bad)
    bad = copy.deepcopy(conf)
    bad["training"]["epochz"] = 3
    with pytest.raises(ConfigError, match="unknown keys in training: \\['epochz'\\]"):
        validate(bad)
    bad = copy.deepcopy(conf)
    del bad["scheduler"]["patience"]
    with pytest.raises(ConfigError, match="missing keys in scheduler"):
        validate(bad)
    bad = copy.deepcopy(conf)
    bad["data"]["segment"], bad["data"]["batch_size"] = None, 4
    with pytest.raises(ConfigError, match="batch_size must be 1"):
        validate(bad)
    bad = copy.deepcopy(conf)
    bad["model"]["args"]["sample_rate"] = 8000
    with pytest.raises(ConfigError, match="come from the data section"):
        validate(bad)
    bad = copy.deepcopy(conf)
    bad["training"]["epochs"] = True
    with pytest.raises(ConfigError, match="training.epochs: expected an int"):
        validate(bad)
    path = tmp_path / "c.yml"
    bad = copy.deepcopy(conf)
    bad["model"]["args"]["bn_chanz"] = 3
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="bn_chanz"):
        load_conf(path)
    with pytest.raises(FileNotFoundError):
        load_conf(tmp_path / "missing.yml")


def test_dump_and_load_round_trip(tmp_path: Path):
    conf = validate(tiny_conf())
    path = config.dump_conf(conf, tmp_path / "conf.yml")
    assert load_conf(path) == conf
    assert config.conf_diff(conf, apply_overrides(conf, ["--training.epochs", "7"])) == {
        "training.epochs": (1, 7)
    }


def test_dynamic_mixing_and_speed_perturbation_keys():
    conf = validate(tiny_conf())
    out = apply_overrides(
        conf,
        [
            "--data.dynamic_mixing",
            "true",
            "--data.mixtures_per_epoch",
            "5000",
            "--data.speed_perturb",
            "0.95,1,1.05",
        ],
    )
    out = validate(out)
    assert out["data"]["dynamic_mixing"] is True and out["data"]["mixtures_per_epoch"] == 5000
    assert out["data"]["speed_perturb"] == [0.95, 1.0, 1.05]
    assert all(isinstance(f, float) for f in out["data"]["speed_perturb"])
    assert apply_overrides(conf, ["--data.speed_perturb", "[0.9, 1.1]"])["data"][
        "speed_perturb"
    ] == [
        0.9,
        1.1,
    ]
    assert apply_overrides(conf, ["--data.speed_perturb", "null"])["data"]["speed_perturb"] is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dynamic_mixing": True, "segment": None}, "dynamic_mixing draws crops of data.segment"),
        ({"mixtures_per_epoch": 100}, "mixtures_per_epoch is only for data.dynamic_mixing"),
        ({"dynamic_mixing": True, "mixtures_per_epoch": 0}, "mixtures_per_epoch must be >= 1"),
        ({"speed_perturb": [0.95, 3.0]}, "speed_perturb: speed factor 3.0 is outside"),
        ({"speed_perturb": []}, "speed_perturb: speed perturbation needs at least one factor"),
        ({"speed_perturb": ["fast"]}, "speed_perturb must be a list of numbers"),
        ({"format": "lrs2"}, "data.format: 'lrs2' is not one of"),
    ],
)
def test_augmentation_errors_name_the_key(changes, message):
    conf = tiny_conf()
    conf["data"].update(changes)
    if conf["data"]["segment"] is None:
        conf["data"]["batch_size"] = 1
    with pytest.raises(ConfigError, match=message):
        validate(conf)
