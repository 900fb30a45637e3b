"""One loader for every model source: files, folders, packages, and hub ids (offline hub cache).

Hub ids resolve through a local Hugging Face cache the tests build (tests/toolkit_helpers.py),
with the real huggingface_hub and Asteroid's own ``cached_download``: nothing is mocked.
"""

from __future__ import annotations

import logging

import pytest
import torch
from asteroid.models import BaseModel, ConvTasNet
from conftest import TINY, load_fixture, max_rel_error
from toolkit_helpers import add_hub_repo

from asteroid_tdanet import TDANet, TDANetBest, TDANetLarge
from asteroid_tdanet.io import load_model, read_model_package

RELEASED_ID = "JusperLee/TDANetBest-4ms-LRS2"
RELEASED_KEYS = ("model_name", "model_args", "state_dict")


@pytest.fixture
def released(tmp_path):
    """The small reference checkpoint in the released file layout, and its reference outputs."""
    fixture = load_fixture("tdanetbest_small.pt")
    path = tmp_path / "pytorch_model.bin"
    torch.save({k: fixture[k] for k in RELEASED_KEYS}, path)
    return path, fixture


def check_reference(model, fixture, reference="outputs_look2hear"):
    with torch.inference_mode():
        out = model.eval()(fixture["inputs"])
    assert max_rel_error(out, fixture[reference]) <= 1e-4


def test_released_package_loads_as_file_dict_folder_and_hub_id(
    tmp_path, released, hub_cache, caplog
):
    path, fixture = released
    add_hub_repo(hub_cache, RELEASED_ID, {"pytorch_model.bin": path})
    package = {k: fixture[k] for k in RELEASED_KEYS}
    for source in (str(path), path, package, path.parent, RELEASED_ID):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asteroid_tdanet"):
            model = TDANet.from_pretrained(source)
        assert type(model) is TDANet and model.legacy_look2hear
        check_reference(model, fixture)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "legacy_look2hear mode" in lines[0], lines
    assert package["model_args"] == fixture["model_args"]  # the caller's dict is not changed
    paper = TDANet.from_pretrained(RELEASED_ID, legacy_look2hear=False)
    check_reference(paper, fixture, "outputs_paper")


def test_asteroids_own_loader_takes_released_packages(released, hub_cache):
    path, fixture = released
    add_hub_repo(hub_cache, RELEASED_ID, {"pytorch_model.bin": path})
    for source in (str(path), RELEASED_ID):
        model = BaseModel.from_pretrained(source)  # Asteroid's code: get("TDANetBest")
        assert isinstance(model, TDANetBest) and model.legacy_look2hear
        check_reference(model, fixture)
    # Re-saved, it is a plain TDANet file in legacy mode, with the same outputs.
    again = BaseModel.from_pretrained(model.serialize())
    assert type(again) is TDANet and again.legacy_look2hear
    check_reference(again, fixture)


def test_our_files_and_other_asteroid_models_load_from_the_hub(tmp_path, hub_cache):
    ours = TDANetLarge(n_src=2, sample_rate=8000, **TINY).eval()
    theirs = ConvTasNet(n_src=2, n_blocks=2, n_repeats=1, n_filters=32, bn_chan=16, hid_chan=16)
    for model, repo in ((ours, "me/TDANetLarge_Libri2Mix_sepclean"), (theirs, "me/ConvTasNet_x")):
        file = tmp_path / f"{repo.split('/')[1]}.bin"
        package = model.serialize()
        package["infos"]["software_versions"] = {}  # ConvTasNet's holds a TorchVersion
        torch.save(package, file)
        add_hub_repo(hub_cache, repo, {"pytorch_model.bin": file, "README.md": b"card"})
    mix = torch.randn(1, 2000)
    for loader in (TDANet.from_pretrained, BaseModel.from_pretrained, load_model):
        loaded = loader("me/TDANetLarge_Libri2Mix_sepclean").eval()
        assert type(loaded) is TDANetLarge
        with torch.inference_mode():
            torch.testing.assert_close(loaded(mix), ours(mix))
    other = load_model("me/ConvTasNet_x")
    assert type(other) is ConvTasNet
    with torch.inference_mode():
        torch.testing.assert_close(other(mix), theirs.eval()(mix))


def test_sources_that_are_not_models_are_named(tmp_path, hub_cache):
    with pytest.raises(FileNotFoundError, match="not a local file or folder.*nobody/nothing"):
        read_model_package("nobody/nothing")
    with pytest.raises(FileNotFoundError, match="folder without a model file"):
        read_model_package(tmp_path)
    bare = tmp_path / "weights.pt"
    torch.save(TDANet(**TINY).state_dict(), bare)
    with pytest.raises(ValueError, match="bare state dict of .* tensors"):
        TDANet.from_pretrained(str(bare))
    wav = tmp_path / "mixture.wav"
    wav.write_bytes(b"RIFF0000WAVEfmt ")
    with pytest.raises(ValueError, match="could not be read as a model file"):
        load_model(wav)
    unknown = tmp_path / "unknown.pth"
    torch.save({"model_name": "NoSuchNet", "model_args": {}, "state_dict": {}}, unknown)
    with pytest.raises(ValueError, match="'NoSuchNet', which no installed package registers"):
        load_model(unknown)
