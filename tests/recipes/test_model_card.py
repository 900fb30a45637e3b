"""Stage 4 library: Asteroid publishable model and Hugging Face model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from recipe_helpers import ScaledMixture, register_test_models, tiny_conf

from asteroid_tdanet.data.registry import NAMES
from asteroid_tdanet.io import load_model, save_model_file
from asteroid_tdanet.recipes.config import dump_conf, validate
from asteroid_tdanet.recipes.model_card import dataset_infos, publish

METRICS = {
    "si_sdr_imp": {"mean": 16.9, "std": 3.1, "count": 3000},
    "sdr_imp": {"mean": 17.3, "std": 3.0, "count": 3000},
    "stoi": {"mean": 0.95, "std": 0.03, "count": 3000},
    "pesq": {"mean": None, "std": None, "count": 0},
}


def make_evaluated_exp(exp: Path) -> Path:
    register_test_models()
    dump_conf(validate(tiny_conf("ScaledMixture", {})), exp / "conf.yml")
    save_model_file(ScaledMixture(), exp / "best_model.pth")
    (exp / "results").mkdir(parents=True)
    (exp / "results" / "final_metrics.json").write_text(json.dumps(METRICS))
    return exp


def test_publish_writes_a_loadable_model_and_a_card(tmp_path: Path):
    exp = make_evaluated_exp(tmp_path / "tdanet")
    out = publish(exp, "librimix", "egs/librimix/TDANet")
    package = torch.load(out / "model.pth", map_location="cpu", weights_only=True)
    assert package["dataset"] == "Libri2Mix" and package["task"] == "sep_clean"
    assert package["licenses"][0]["license"] == "CC BY 4.0"
    assert package["infos"]["final_metrics"]["si_sdr_imp"] == 16.9
    assert package["infos"]["recipe_name"] == "egs/librimix/TDANet"
    assert package["infos"]["training_config"]["model"]["name"] == "ScaledMixture"
    model = load_model(out / "model.pth")
    assert model(torch.randn(1, 100)).shape == (1, 2, 100)

    card = (out / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "asteroid" and meta["datasets"] == ["Libri2Mix"]
    assert "ScaledMixture" in meta["tags"]
    results = meta["model-index"][0]["results"][0]["metrics"]
    assert {"name": "SI-SNRi", "type": "si-sdr-imp", "value": 16.9} in results
    assert all(r["name"] != "PESQ" for r in results)  # no value: not claimed
    assert "| si_sdr_imp | 16.900 | 3.100 | 3000 |" in body
    assert "format: librimix" in body  # the training conf


def test_card_metadata_parses_with_huggingface_hub(tmp_path: Path):
    hub = pytest.importorskip("huggingface_hub")
    out = publish(make_evaluated_exp(tmp_path / "t"), "wham", "egs/wham/TDANet")
    card = hub.ModelCard((out / "README.md").read_text())
    assert card.data.library_name == "asteroid"
    assert card.data.license == "cc-by-nc-4.0"  # WHAM! noise and WSJ0 are non-commercial


def test_unknown_dataset_and_missing_metrics_are_named(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown data set 'timit'"):
        dataset_infos("timit", "sep_clean")
    exp = make_evaluated_exp(tmp_path / "t")
    (exp / "results" / "final_metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="evaluate first"):
        publish(exp, "librimix", "egs/librimix/TDANet")
    assert set(NAMES) == {"librimix", "wham", "lrs2_2mix", "mini2mix"}
