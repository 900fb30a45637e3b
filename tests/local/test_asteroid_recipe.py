"""egs/librimix/TDANet/asteroid_recipe.md: its script, verbatim, on a fake Libri2Mix tree."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from fake_trees import make_librimix_tree
from recipe_helpers import REPO, tiny_conf

from asteroid_tdanet import TDANet
from asteroid_tdanet.data.prepare import main as prepare_main

DOC = REPO / "egs" / "librimix" / "TDANet" / "asteroid_recipe.md"


def recipe_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, f"{DOC} should hold exactly one python block"
    return blocks[0]


@pytest.mark.slow
def test_asteroid_recipe_trains_and_reloads_tdanet(tmp_path):
    root = make_librimix_tree(tmp_path / "raw", n_per_split=4, seconds=0.6)
    data = tmp_path / "data"
    assert prepare_main(["--root", str(root), "--out", str(data), "--no_progress"], "librimix") == 0
    conf = tiny_conf("TDANet")
    conf["data"].update(batch_size=2, segment=0.5)
    (tmp_path / "tdanet.yml").write_text(yaml.safe_dump(conf))
    script = tmp_path / "train_asteroid.py"
    script.write_text(recipe_script())
    exp = tmp_path / "exp"
    run = subprocess.run(
        [sys.executable, str(script), "--conf", "tdanet.yml", "--data_dir", str(data)]
        + ["--exp_dir", str(exp), "--max_steps", "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "best model: TDANet, val_loss" in run.stdout

    package = torch.load(exp / "best_model.pth", weights_only=True)
    assert package["model_name"] == "TDANet" and package["dataset"] == "Libri2Mix"
    (ckpt,) = (exp / "checkpoints").glob("*.ckpt")
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 2  # 4 training mixtures, batch 2: one epoch of 2 steps
    model = TDANet.from_pretrained(str(exp / "best_model.pth"))
    trained = {k[len("model.") :]: v for k, v in state["state_dict"].items()}
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[key])
    assert model.masker.n_blocks == conf["model"]["args"]["n_blocks"]
