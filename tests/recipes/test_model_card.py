"""Stage 4 library: Asteroid publishable model and Hugging Face model card."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from asteroid.models import BaseModel
from asteroid.models.publisher import _populate_publishable
from recipe_helpers import TINY_ARGS, ScaledMixture, register_test_models, tiny_conf
from toolkit_helpers import (
    add_hub_repo,
    asteroid_infer_estimates,
    offline_env,
    run_asteroid_infer,
    write_mixture,
)

from asteroid_tdanet import TDANet
from asteroid_tdanet.data.registry import NAMES
from asteroid_tdanet.io import load_model, save_model_file
from asteroid_tdanet.recipes.config import dump_conf, validate
from asteroid_tdanet.recipes.model_card import (
    LICENSE_FIELDS,
    dataset_infos,
    publish,
    repo_name,
)

METRICS = {
    "si_sdr_imp": {"mean": 16.9, "std": 3.1, "count": 3000},
    "sdr_imp": {"mean": 17.3, "std": 3.0, "count": 3000},
    "stoi": {"mean": 0.95, "std": 0.03, "count": 3000},
    "pesq": {"mean": None, "std": None, "count": 0},
}


def make_evaluated_exp(exp: Path, model=None) -> Path:
    register_test_models()
    name = "ScaledMixture" if model is None else type(model).__name__
    dump_conf(validate(tiny_conf(name, None if model else {})), exp / "conf.yml")
    save_model_file(ScaledMixture() if model is None else model, exp / "best_model.pth")
    (exp / "results").mkdir(parents=True)
    (exp / "results" / "final_metrics.json").write_text(json.dumps(METRICS))
    return exp


def test_publish_writes_a_loadable_model_and_a_card(tmp_path: Path):
    exp = make_evaluated_exp(tmp_path / "tdanet")
    out = publish(exp, "librimix", "egs/librimix/TDANet")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "pytorch_model.bin"]
    package = torch.load(out / "pytorch_model.bin", map_location="cpu", weights_only=True)
    assert package["dataset"] == "Libri2Mix" and package["task"] == "sep_clean"
    assert package["licenses"][0]["license"] == "CC BY 4.0"
    assert package["infos"]["final_metrics"]["si_sdr_imp"] == 16.9
    assert package["infos"]["recipe_name"] == "egs/librimix/TDANet"
    assert package["infos"]["training_config"]["model"]["name"] == "ScaledMixture"
    model = load_model(out / "pytorch_model.bin")
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


@pytest.mark.parametrize("dataset", sorted(NAMES))
def test_licences_in_asteroids_fields_for_data_model_and_toolkit(tmp_path, dataset):
    model = TDANet(n_src=2, sample_rate=8000, **TINY_ARGS["TDANet"])
    out = publish(make_evaluated_exp(tmp_path / "t", model), dataset, "egs/x/TDANet", "me")
    package = torch.load(out / "pytorch_model.bin", weights_only=True)
    licenses = package["licenses"]
    assert all(tuple(lic) == LICENSE_FIELDS for lic in licenses)
    titles = [lic["title"] for lic in licenses]
    assert titles[-2].startswith("TDANet") and titles[-1] == "asteroid-tdanet"
    assert all(lic["title_link"].startswith("http") for lic in licenses)
    suggested = package["infos"]["upload_name"]
    # Asteroid's own publishing helper reads them (it raised KeyError: 'title_link' before) and
    # names the repo as we suggest (less the characters hub names refuse, WHAM! -> WHAM).
    populated = _populate_publishable(package, uploader="Tester", git_username="me")
    assert populated["infos"]["upload_name"].replace("!", "") == suggested
    assert "TDANet: An efficient encoder-decoder" in populated["infos"]["license_note"]


def test_repo_names_in_asteroids_style():
    assert repo_name("TDANet", "Libri2Mix", "sep_clean") == "TDANet_Libri2Mix_sepclean"
    assert repo_name("TDANetLarge", "WHAM!", "sep_noisy") == "TDANetLarge_WHAM_sepnoisy"


def test_published_folder_loads_from_the_hub_the_asteroid_way(tmp_path, hub_cache):
    """Upload = the publish folder as a hub repo; then the card's two usages work, offline."""
    model = TDANet(n_src=2, sample_rate=8000, **TINY_ARGS["TDANet"]).eval()
    out = publish(make_evaluated_exp(tmp_path / "exp", model), "librimix", "egs/x/TDANet", "me")
    hub_id = "me/TDANet_Libri2Mix_sepclean"
    card = (out / "README.md").read_text()
    assert f'TDANet.from_pretrained("{hub_id}")' in card and f"asteroid-infer {hub_id}" in card
    add_hub_repo(hub_cache, hub_id, {p.name: p for p in out.iterdir()})

    mix = torch.randn(1, 4000)
    with torch.inference_mode():
        for loaded in (TDANet.from_pretrained(hub_id), BaseModel.from_pretrained(hub_id)):
            assert type(loaded) is TDANet
            torch.testing.assert_close(loaded.eval()(mix), model(mix))

    mixture = write_mixture(tmp_path / "mix.wav")
    asteroid_infer = Path(sys.executable).parent / "asteroid-infer"
    written, _ = run_asteroid_infer(
        [str(asteroid_infer)],
        hub_id,
        tmp_path / "mix.wav",
        tmp_path / "sep",
        offline_env(hub_cache),
    )
    expected = asteroid_infer_estimates(model, mixture)
    for k, audio in enumerate(written):
        torch.testing.assert_close(torch.from_numpy(audio), expected[k], atol=1e-4, rtol=0)
