"""One registry entry per data set, one name everywhere; every data set used through its entry."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from asteroid.models.publisher import make_license_notice
from fake_trees import make_librimix_tree, make_lrs2_tree, make_wham_tree
from recipe_helpers import REPO

from asteroid_tdanet.data import (
    make_dataset,
    make_dynamic_mixing_dataset,
    prepare,
    registry,
)
from asteroid_tdanet.data.mini2mix import build_mini2mix, default_sources_dir
from asteroid_tdanet.recipes.config import SCHEMA
from asteroid_tdanet.recipes.model_card import dataset_infos


def build_tree(name: str, root: Path) -> Path:
    """A small tree of data set `name` in its real layout (mini2mix: the real builder)."""
    if name == "mini2mix":
        build_mini2mix(default_sources_dir(), root, n_train=6, n_dev=2, n_test=2, progress=False)
        return root
    builders = {"librimix": make_librimix_tree, "wham": make_wham_tree, "lrs2_2mix": make_lrs2_tree}
    return builders[name](root, n_per_split=4, seconds=1.0, sample_rate=default_rate(name))


def default_rate(name: str) -> int:
    return registry.get_entry(name).layout.default_sample_rate


@pytest.mark.parametrize("name", registry.NAMES)
def test_the_name_is_the_recipe_the_scripts_and_the_confs(name: str):
    entry = registry.get_entry(name)
    assert entry.name == name and entry.recipe == f"egs/{name}/TDANet"
    run_sh = (REPO / entry.recipe / "run.sh").read_text()
    assert f"--dataset {name} " in run_sh.replace("\\\n", " ")
    assert f"--sample_rate {entry.layout.default_sample_rate}" in run_sh
    assert (REPO / entry.download_script).is_file()
    confs = sorted((REPO / entry.recipe / "conf").glob("*.yml"))
    assert confs
    for conf in confs:
        assert yaml.safe_load(conf.read_text())["data"]["format"] == name, conf


def test_the_conf_schema_and_the_stage_driver_know_only_the_registry():
    assert SCHEMA["data"]["format"].choices == registry.NAMES
    assert {p.name for p in (REPO / "egs").iterdir() if p.is_dir()} == set(registry.NAMES)
    scripts = {p.name[len("download_") : -3] for p in (REPO / "local").glob("download_*.sh")}
    assert scripts - {"lib"} == set(registry.NAMES)
    # No per-data-set prepare script: stage 1 takes the name.
    assert not list((REPO / "local").glob("prepare_*.py"))
    assert '"$local_dir/prepare.py" --dataset "$dataset"' in (REPO / "local/recipe.sh").read_text()


@pytest.mark.parametrize("name", registry.NAMES)
def test_every_data_set_through_its_entry(name: str, tmp_path: Path):
    """Stage 1, the fixed splits, dynamic mixing and the model-card infos, from the name."""
    entry = registry.get_entry(name)
    rate = default_rate(name)
    root = build_tree(name, tmp_path / "raw")
    meta = prepare(name, root, tmp_path / "data", progress=False)
    assert meta["format"] == name and meta["dataset"] == entry.title
    test = make_dataset(name, tmp_path / "data", "test", sample_rate=rate)
    mixture, sources = test[0]
    assert sources.shape[0] == 2 and sources.shape[1] == mixture.shape[0]
    train = make_dynamic_mixing_dataset(
        name, tmp_path / "data", sample_rate=rate, segment=0.5, seed=0, progress=False
    )
    mixture, sources = train[0]
    assert mixture.shape == (rate // 2,) and sources.shape == (2, rate // 2)
    assert train.get_infos() == test.get_infos() == dataset_infos(name, "sep_clean")
    # Every training speaker is found, named by the entry's naming rule.
    assert len(train.pool.speakers) >= 2
    for utt in train.pool.speech:
        assert entry.naming.speaker(utt.id) == utt.speaker


@pytest.mark.parametrize("name", registry.NAMES)
def test_licences_are_asteroid_licence_dicts(name: str):
    for task in registry.get_entry(name).layout.tasks:
        infos = dataset_infos(name, task)
        assert infos["dataset"] == registry.get_entry(name).title and infos["task"] == task
        note = make_license_notice("model", infos["licenses"], uploader="me")  # Asteroid's own
        for lic in infos["licenses"]:
            assert lic["title"] in note and lic["license_link"] in note
    noisy = [lic["title"] for lic in dataset_infos("wham", "sep_noisy")["licenses"]]
    assert any("WHAM! noise" in t for t in noisy) and any("WSJ0" in t for t in noisy)
    assert len(dataset_infos("librimix", "sep_clean")["licenses"]) == 1


@pytest.mark.parametrize(
    ("name", "mixture", "utterances", "speakers"),
    [
        (
            "librimix",
            "4680-16042-0024_1447-17506-0028",
            ["4680-16042-0024", "1447-17506-0028"],
            ["4680", "1447"],
        ),
        (
            "wham",
            "011a0101_0.061105_401o0306_-0.061105",
            ["011a0101", "401o0306"],
            ["011", "401"],
        ),
        (
            "lrs2_2mix",
            "6330311066473698535_00011_0.53084_6339356267468615354_00010_-0.53084",
            ["6330311066473698535_00011", "6339356267468615354_00010"],
            ["6330311066473698535", "6339356267468615354"],
        ),
        (
            "mini2mix",
            "flite-kal16-0001_espeak-us-m1-0042",
            ["flite-kal16-0001", "espeak-us-m1-0042"],
            ["flite-kal16", "espeak-us-m1"],
        ),
    ],
)
def test_real_mixture_names_give_utterances_and_speakers(name, mixture, utterances, speakers):
    naming = registry.get_entry(name).naming
    assert naming.split_mixture(mixture, 2) == utterances
    assert [naming.speaker(u) for u in utterances] == speakers


def test_a_new_benchmark_is_one_entry(tmp_path: Path, monkeypatch):
    """Register a data set that no other file knows about: everything works from its entry."""
    toy = replace(registry.get_entry("wham"), name="toy2mix", title="Toy2Mix", hf_id="toy")
    monkeypatch.setitem(registry.ENTRIES, "toy2mix", toy)
    root = make_wham_tree(tmp_path / "raw", n_per_split=3)
    assert prepare("toy2mix", root, tmp_path / "data", progress=False)["dataset"] == "Toy2Mix"
    assert len(make_dataset("toy2mix", tmp_path / "data", "valid", sample_rate=8000)) == 3
    train = make_dynamic_mixing_dataset(
        "toy2mix", tmp_path / "data", sample_rate=8000, segment=0.5, seed=0, progress=False
    )
    assert train[0][0].shape == (4000,)
    assert dataset_infos("toy2mix", "sep_clean")["dataset"] == "Toy2Mix"


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=re.escape(str(list(registry.NAMES)))):
        registry.get_entry("timit")
    with pytest.raises(ValueError, match="renamed 'lrs2_2mix'"):
        registry.get_entry("lrs2")
