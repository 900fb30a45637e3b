"""egs/librimix/TDANet/asteroid/: Asteroid's recipe shape, driven by its own run.sh."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from fake_trees import make_librimix_tree
from recipe_helpers import REPO

from asteroid_tdanet import TDANet
from asteroid_tdanet.recipes.training import make_loss

RECIPE = REPO / "egs" / "librimix" / "TDANet" / "asteroid"


def load_train_module():
    spec = importlib.util.spec_from_file_location("asteroid_recipe_train", RECIPE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_same_losses_and_hyper_parameters_as_our_recipe():
    train = load_train_module()
    ours = yaml.safe_load((RECIPE.parent / "conf" / "tdanet.yml").read_text())
    assert train.train_loss_func.loss_func is make_loss(ours["loss"]["train"]).loss_func
    assert train.val_loss_func.loss_func is make_loss(ours["loss"]["valid"]).loss_func
    conf = yaml.safe_load((RECIPE / "local" / "conf.yml").read_text())
    assert {**conf["filterbank"], **conf["masknet"]} == {
        k: v
        for k, v in ours["model"]["args"].items()
        if k in {**conf["filterbank"], **conf["masknet"]}
    }
    assert {**conf["filterbank"], **conf["masknet"]}.keys() <= ours["model"]["args"].keys()
    assert conf["optim"]["lr"] == ours["optim"]["lr"] and conf["data"]["task"] == "sep_clean"
    assert conf["training"]["epochs"] == ours["training"]["epochs"]
    assert conf["training"]["gradient_clip"] == ours["training"]["gradient_clip"]
    # Asteroid's flat flags: no key twice across groups, and run.sh's defaults are the conf's.
    flat = [k for group in conf.values() for k in group]
    assert len(flat) == len(set(flat))
    run_sh = (RECIPE / "run.sh").read_text()
    for key in ("bn_chan", "hid_chan", "n_blocks", "upsampling_depth", "n_heads", "lr"):
        value = {k: v for group in conf.values() for k, v in group.items()}[key]
        assert f"\n{key}={value}\n" in run_sh, key


@pytest.mark.slow
def test_run_sh_prepares_trains_evaluates_and_publishes(tmp_path):
    root = make_librimix_tree(tmp_path / "raw", n_per_split=2, seconds=0.6)
    # The recipe at its place in a checkout (run.sh finds the shared steps four levels up).
    checkout = tmp_path / "checkout"
    recipe = checkout / "egs" / "librimix" / "TDANet" / "asteroid"
    shutil.copytree(RECIPE, recipe, ignore=shutil.ignore_patterns("data", "exp", "logs"))
    (checkout / "local").symlink_to(REPO / "local")
    tiny = ["--bn_chan", "16", "--hid_chan", "32", "--n_blocks", "2", "--upsampling_depth", "3"]
    tiny += ["--n_heads", "4", "--epochs", "1", "--num_workers", "0", "--segment", "0.5"]
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    run = subprocess.run(
        ["bash", "run.sh", "--storage_dir", str(root), "--tag", "t", "--python_path"]
        + [sys.executable, "--eval_use_gpu", "0", "--n_save_ex", "1", *tiny],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    exp = recipe / "exp" / "train_tdanet_t"
    for name in ("conf.yml", "best_model.pth", "best_k_models.json", "train.log", "eval.log"):
        assert (exp / name).is_file(), name
    conf = yaml.safe_load((exp / "conf.yml").read_text())
    assert conf["masknet"]["n_blocks"] == 2 and conf["data"]["segment"] == 0.5  # flags reached it
    assert conf["main_args"]["exp_dir"] == "exp/train_tdanet_t"
    final = json.loads((exp / "librimix" / "final_metrics.json").read_text())
    assert math.isfinite(final["si_sdr_imp"]) and math.isfinite(final["stoi"])
    assert len(list((exp / "librimix" / "examples").glob("ex_*/s0_estimate.wav"))) == 1
    # Asteroid's publish_dir: what asteroid-upload reads.
    published = torch.load(exp / "publish_dir" / "model.pth", weights_only=True)
    assert published["infos"]["recipe_name"].strip() == "librimix/TDANet"
    assert published["dataset"] == "Libri2Mix" and published["licenses"]
    assert published["infos"]["final_metrics"]["si_sdr_imp"] == final["si_sdr_imp"]
    from asteroid.models import BaseModel

    model = BaseModel.from_pretrained(str(exp / "best_model.pth"))
    assert type(model) is TDANet and model.masker.n_blocks == 2
