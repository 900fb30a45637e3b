"""ESPnet's enhancement task runs TDANet from our conf, on our Kaldi-style folders, no glue.

Runs in its own environment (``make test-espnet``: torch 2.9.1, espnet 202511, which can't share
``.venv``); the main suite deselects these tests when ESPnet is not installed.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, TINY, load_fixture, max_rel_error
from fake_trees import make_librimix_tree

pytestmark = pytest.mark.espnet

BENCHMARKS = ("librimix", "wham", "lrs2_2mix")
CONFS = {
    b: REPO / "egs" / b / "TDANet" / "espnet" / "conf" / "train_enh_tdanet.yaml" for b in BENCHMARKS
}
CONF = CONFS["librimix"]


def build(conf: dict, tmp_path: Path):
    """ESPnet's own way: its task's parser reads the YAML, its build_model builds."""
    from espnet2.tasks.enh import EnhancementTask

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump(conf))
    args = EnhancementTask.get_parser().parse_args(
        ["--config", str(path), "--output_dir", str(tmp_path / "exp")]
    )
    return EnhancementTask.build_model(args), args


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_conf_is_the_papers_tdanet_with_our_recipes_loss(benchmark):
    from asteroid_tdanet import TDANet  # only to compare with: ESPnet never imports it

    path = CONFS[benchmark]
    conf = yaml.safe_load(path.read_text())
    ours = yaml.safe_load((REPO / "egs" / benchmark / "TDANet" / "conf" / "tdanet.yml").read_text())
    separator = conf["separator_conf"]
    assert conf["encoder"] == conf["decoder"] == "same" and conf["separator"] == "asteroid"
    assert separator["model_name"] == "TDANet"
    model_args = {k: separator[k] for k in ours["model"]["args"]}
    assert model_args == ours["model"]["args"]  # the recipe's (paper's) hyper-parameters
    assert separator["sample_rate"] == ours["data"]["sample_rate"]
    # Our recipe trains PIT negative SNR and monitors PIT negative SI-SDR on validation.
    assert ours["loss"] == {"train": "pit_neg_snr", "valid": "pit_neg_sisdr"}
    trained = [c for c in conf["criterions"] if c["wrapper_conf"]["weight"] > 0]
    assert [c["name"] for c in trained] == ["snr"]
    monitored = [c for c in conf["criterions"] if c["wrapper_conf"]["weight"] == 0]
    assert [c["name"] for c in monitored] == ["si_snr"]
    for criterion in conf["criterions"]:
        assert criterion["wrapper"] == "pit" and criterion["wrapper_conf"]["independent_perm"]
    assert conf["val_scheduler_criterion"] == ["valid", "si_snr_loss"]
    assert conf["early_stopping_criterion"] == ["valid", "si_snr_loss", "min"]
    assert conf["best_model_criterion"] == [["valid", "si_snr_loss", "min"]]
    assert conf["optim_conf"]["lr"] == ours["optim"]["lr"]
    assert conf["patience"] == ours["training"]["early_stop_patience"]
    assert conf["scheduler_conf"]["patience"] == ours["scheduler"]["patience"]
    assert conf["scheduler_conf"]["factor"] == ours["scheduler"]["factor"]
    assert conf["grad_clip"] == ours["training"]["gradient_clip"]
    assert conf["max_epoch"] == ours["training"]["epochs"]
    assert conf["chunk_length"] == ours["data"]["segment"] * ours["data"]["sample_rate"]
    assert TDANet.__name__ == separator["model_name"]
    # One command in the conf header, run.sh and the docs.
    variable = {"librimix": "LIBRIMIX", "wham": "WHAM", "lrs2_2mix": "LRS2_2MIX"}[benchmark]
    command = next(line for line in path.read_text().splitlines() if "./run.sh" in line)
    command = command.lstrip("# ").strip()
    assert command.startswith(f"{variable}=/path/to/") and command.endswith(" ./run.sh")
    assert command in (path.parents[1] / "run.sh").read_text()
    assert command in (REPO / "docs" / "integrations.md").read_text()


def test_espnet_builds_tdanet_without_importing_the_plugin(tmp_path):
    """A fresh ESPnet process: only the start-up hook can have registered TDANet."""
    script = tmp_path / "build.py"
    script.write_text(
        "import sys\n"
        "from espnet2.tasks.enh import EnhancementTask\n"
        f"args = EnhancementTask.get_parser().parse_args(['--config', {str(CONF)!r}, "
        f"'--output_dir', {str(tmp_path / 'exp')!r}])\n"
        "model = EnhancementTask.build_model(args)\n"
        "print(type(model.separator.model).__module__, type(model.separator.model).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[-1] == "asteroid_tdanet.models TDANet"  # ESPnet prints more


def test_training_step_on_our_kaldi_folders(tmp_path):
    from espnet2.train.dataset import ESPnetDataset

    from asteroid_tdanet.data.prepare import main as prepare_main

    root = make_librimix_tree(tmp_path / "raw", n_per_split=2, seconds=0.5)
    espnet = tmp_path / "enh1" / "data"
    argv = ["--root", str(root), "--out", str(tmp_path / "data"), "--no_progress"]
    assert prepare_main([*argv, "--espnet_dir", str(espnet)], name="librimix") == 0
    train = espnet / "train"
    dataset = ESPnetDataset(
        [
            (str(train / "wav.scp"), "speech_mix", "sound"),
            (str(train / "spk1.scp"), "speech_ref1", "sound"),
            (str(train / "spk2.scp"), "speech_ref2", "sound"),
        ]
    )
    ids = [line.split()[0] for line in (train / "wav.scp").read_text().splitlines()]
    items = [dataset[uid][1] for uid in ids]
    crop = min(len(item["speech_mix"]) for item in items)
    batch = {
        key: torch.stack([torch.as_tensor(np.float32(it[key][:crop])) for it in items])
        for key in ("speech_mix", "speech_ref1", "speech_ref2")
    }
    assert batch["speech_mix"].abs().max() > 0.01  # real audio, read by ESPnet's loader

    model, args = build(yaml.safe_load(CONF.read_text()), tmp_path)  # the committed conf
    separator = model.separator.model
    assert type(separator).__name__ == "TDANet" and separator.masker.n_blocks == 16
    optimizer = torch.optim.Adam(model.parameters(), **args.optim_conf)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.train()
    lengths = torch.full((len(items),), crop)
    loss, stats, _ = model(speech_mix_lengths=lengths, **batch)
    assert torch.isfinite(loss).all() and "snr_loss" in stats and "si_snr_loss" in stats
    torch.testing.assert_close(loss.detach(), stats["snr_loss"])  # SI-SNR has weight 0
    loss.mean().backward()
    optimizer.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("masker.ublock" in k for k in changed) and any("encoder" in k for k in changed)


def test_pretrained_path_loads_our_files_and_released_ones(tmp_path):
    from asteroid_tdanet import TDANet

    base = yaml.safe_load(CONF.read_text())
    ours = TDANet(n_src=2, sample_rate=8000, **TINY).eval()
    ours_file = tmp_path / "tdanet.pth"
    torch.save(ours.serialize(), ours_file)
    fixture = load_fixture("tdanetbest_small.pt")
    released_file = tmp_path / "pytorch_model.bin"
    torch.save({k: fixture[k] for k in ("model_name", "model_args", "state_dict")}, released_file)

    mix = torch.randn(1, 3000)
    for path, reference in ((ours_file, None), (released_file, "outputs_look2hear")):
        conf = copy.deepcopy(base)
        conf["separator_conf"] = {
            "model_name": "TDANet",
            "num_spk": 2,
            "loss_type": "si_snr",
            "pretrained_path": str(path),
        }
        model, _ = build(conf, tmp_path / path.stem)
        separator = model.separator.model.eval()
        with torch.inference_mode():
            if reference is None:
                torch.testing.assert_close(separator(mix), ours(mix))
            else:
                assert separator.legacy_look2hear
                out = separator(fixture["inputs"])
                assert max_rel_error(out, fixture[reference]) <= 1e-4
