"""Our transcription of the released TDANet computation reproduces the released code's outputs."""

from __future__ import annotations

import pytest
import torch
from conftest import fixture_path, load_fixture, max_rel_error

from asteroid_tdanet.bench.look2hear_reference import Look2HearTDANet
from asteroid_tdanet.bench.timing import num_threads

TOLERANCE = 1e-4


def _keys_with_shapes(name: str) -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in fixture_path(name).read_text().splitlines():
        key, shape = line.split(" ", 1)
        keys[key] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    return keys


def test_module_names_are_the_released_state_dict_keys():
    expected = _keys_with_shapes("tdanetbest_4ms_16k_keys.txt")
    model = Look2HearTDANet(sample_rate=16000, enc_kernel_size=4)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    assert sum(p.numel() for p in model.parameters()) == 2_353_479


def test_small_fixture_item_by_item():
    fixture = load_fixture("tdanetbest_small.pt")
    model = Look2HearTDANet.from_checkpoint(fixture).eval()
    with torch.inference_mode():
        out = torch.stack([model(item[None])[0] for item in fixture["inputs"]])
    assert out.shape == fixture["outputs_look2hear"].shape == (2, 2, 3999)
    assert max_rel_error(out, fixture["outputs_look2hear"]) <= TOLERANCE


def test_small_fixture_batch_keeps_the_attention_over_batch_defect():
    fixture = load_fixture("tdanetbest_small.pt")
    model = Look2HearTDANet.from_checkpoint(fixture).eval()
    with torch.inference_mode():
        batched = model(fixture["inputs"])
    # The released attention mixes the two items, so batching changes the outputs.
    assert max_rel_error(batched, fixture["outputs_look2hear"]) > 1e-3


def test_full_size_released_file_loads_strictly_and_matches():
    model = Look2HearTDANet.from_checkpoint(fixture_path("tdanetbest_4ms_16k_random.bin")).eval()
    io = load_fixture("tdanetbest_4ms_16k_random_io.pt")
    # One thread: on a shared machine, oversubscribed threads make this many times slower.
    with num_threads(1), torch.inference_mode():
        out = model(io["inputs"])
    assert out.shape == io["outputs_look2hear"].shape == (1, 2, 16000)
    assert max_rel_error(out, io["outputs_look2hear"]) <= TOLERANCE


def test_one_dimensional_input_and_bad_shapes():
    model = Look2HearTDANet(
        out_channels=8, in_channels=16, num_blocks=1, upsampling_depth=3, sample_rate=8000
    ).eval()
    with torch.inference_mode():
        assert model(torch.randn(801)).shape == (2, 801)
        with pytest.raises(ValueError, match="shape"):
            model(torch.randn(1, 1, 1, 10))


def test_checkpoint_without_state_dict_names_the_missing_key():
    with pytest.raises(KeyError, match="state_dict"):
        Look2HearTDANet.from_checkpoint({"model_args": {}})
