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
    model_card,
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
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model.pth", "pytorch_model.bin"]
    # One file under both names: Asteroid's (asteroid-upload) and the hub's (from_pretrained).
    assert (out / "model.pth").samefile(out / "pytorch_model.bin")
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
    # Asteroid's licence for every model it publishes; the notice marks research-only sources.
    assert card.data.license == "cc-by-sa-3.0"
    assert "(Research only)" in card.text


def test_card_carries_asteroids_licence_notice(tmp_path: Path):
    model = TDANet(n_src=2, sample_rate=8000, **TINY_ARGS["TDANet"])
    exp = make_evaluated_exp(tmp_path / "t", model)
    out = publish(exp, "librimix", "egs/librimix/TDANet", "me", uploader="Ada Lovelace")
    card = (out / "README.md").read_text()
    name = "TDANet_Libri2Mix_sepclean"
    notice = next(line for line in card.splitlines() if line.startswith("This work"))
    assert notice.startswith(f'This work "{name}" is a derivative of <a href=')
    assert notice.endswith(
        f'"{name}" is licensed under <a href="https://creativecommons.org/licenses/by-sa/3.0/">'
        "Attribution-ShareAlike 3.0 Unported</a> by Ada Lovelace."
    )
    assert "TDANet: An efficient encoder-decoder" in notice and "(Research only)" not in notice
    # The Sepformer baseline is not in asteroid.models: the card imports it from the plugin.
    sep_card = model_card(
        repo_name="Sepformer_Libri2Mix_sepclean",
        model_name="Sepformer",
        dataset="librimix",
        conf=yaml.safe_load((exp / "conf.yml").read_text()),
        metrics=METRICS,
        n_params=1,
        recipe="egs/librimix/TDANet",
    )
    assert "from asteroid_tdanet import Sepformer" in sep_card


class FakeZenodoRequests:
    """Stands in for the ``requests`` module of Asteroid's Zenodo client: the network boundary.

    Everything before it runs for real (asteroid-upload's argument parsing, loading model.pth,
    Asteroid's licence notice and Zenodo metadata built from our fields); only the HTTP calls
    are answered here, as Zenodo's API answers them.
    """

    def __init__(self):
        self.calls = []

    def _answer(self, method, url, status, body):
        self.calls.append((method, url))
        answer = type("Response", (), {})()
        answer.status_code, answer.content = status, b"{}"
        answer.json = lambda: body
        return answer

    def post(self, url, **kwargs):
        if url.endswith("/files"):
            self.uploaded = kwargs["files"]["file"].read()
            return self._answer("POST", url, 201, {})
        if url.endswith("/publish"):
            return self._answer("POST", url, 202, {"state": "done"})
        return self._answer("POST", url, 201, {"id": 42})

    def put(self, url, data, **kwargs):
        self.metadata = json.loads(data)["metadata"]
        return self._answer("PUT", url, 200, {"id": 42})

    def get(self, url, **kwargs):
        return self._answer("GET", url, 200, {"id": 42})


def test_asteroid_upload_accepts_the_published_folder(tmp_path, monkeypatch, capsys):
    from asteroid.models import zenodo
    from asteroid.scripts.asteroid_cli import upload

    model = TDANet(n_src=2, sample_rate=8000, **TINY_ARGS["TDANet"])
    out = publish(make_evaluated_exp(tmp_path / "exp", model), "wham", "egs/wham/TDANet", "me")
    fake = FakeZenodoRequests()
    monkeypatch.setattr(zenodo, "requests", fake)
    monkeypatch.setattr(
        sys,
        "argv",
        ["asteroid-upload", str(out), "--uploader", "Ada Lovelace", "--git_username", "ada"]
        + ["--token", "offline", "--use_sandbox", "--force_publish"],
    )
    upload()
    assert [c[0] for c in fake.calls] == ["POST", "PUT", "POST", "POST"]
    assert all(url.startswith("https://sandbox.zenodo.org/") for _, url in fake.calls)
    meta = fake.metadata
    assert meta["title"] == "ada/TDANet_WHAM!_sepclean" and meta["license"] == "CC-BY-SA-3.0"
    assert "TDANet" in meta["keywords"] and "WHAM!" in meta["keywords"]
    assert "egs/wham/TDANet" in meta["description"]  # recipe, conf and metrics from our fields
    assert "si_sdr_imp: 16.9" in meta["description"]
    assert "(Research only)" in meta["description"]  # WSJ0 (under WHAM!) is research-only
    published = torch.load(out / "published_model.pth", weights_only=True)
    assert published["infos"]["uploader"] == "Ada Lovelace"
    assert fake.uploaded == (out / "published_model.pth").read_bytes()
    loaded = load_model(out / "published_model.pth")  # what Zenodo then serves still loads
    assert type(loaded) is TDANet


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
