"""The released checkpoints: exact reproduction of the authors' code, layout checks, errors."""

from __future__ import annotations

import math
import pickle
import re

import pytest
import torch
from conftest import fixture_path, load_fixture, max_rel_error

from asteroid_tdanet import TDANet, TDANetLarge
from asteroid_tdanet.look2hear import POSITION_KEY, load_look2hear, to_look2hear

TOLERANCE = 1e-4


def released_layout(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape from the released key lists."""
    layout = {}
    for line in fixture_path(name).read_text().splitlines():
        key, shape = re.fullmatch(r"(\S+) \(([\d, ]*)\)", line.strip()).groups()
        layout[key] = tuple(int(s) for s in shape.split(",") if s.strip())
    return layout


@pytest.mark.parametrize(
    ("legacy", "reference"), [(True, "outputs_look2hear"), (False, "outputs_paper")]
)
def test_small_fixture_both_modes_batch_of_two(legacy, reference):
    fixture = load_fixture("tdanetbest_small.pt")
    model = TDANet.from_look2hear(fixture, legacy_look2hear=legacy)
    with torch.inference_mode():
        out = model(fixture["inputs"])
    assert out.shape == fixture[reference].shape == (2, 2, 3999)
    assert max_rel_error(out, fixture[reference]) <= TOLERANCE


@pytest.mark.parametrize(
    ("legacy", "reference"), [(True, "outputs_look2hear"), (False, "outputs_paper")]
)
def test_full_size_released_file_both_modes(legacy, reference):
    model = TDANet.from_look2hear(
        fixture_path("tdanetbest_4ms_16k_random.bin"), legacy_look2hear=legacy
    )
    io = load_fixture("tdanetbest_4ms_16k_random_io.pt")
    with torch.inference_mode():
        out = model(io["inputs"])
    assert max_rel_error(out, io[reference]) <= TOLERANCE
    assert sum(p.numel() for p in model.parameters()) == 2_353_479


@pytest.mark.parametrize(
    ("model_class", "keys_file", "params"),
    [
        (TDANet, "tdanetbest_4ms_16k_keys.txt", 2_353_479),
        (TDANetLarge, "tdanetbest_2ms_16k_keys.txt", 2_339_431),
    ],
)
def test_our_parameters_are_exactly_the_released_layout(model_class, keys_file, params):
    model = model_class(n_src=2, sample_rate=16000, legacy_look2hear=True)
    exported = to_look2hear(model)["state_dict"]
    assert {k: tuple(v.shape) for k, v in exported.items()} == released_layout(keys_file)
    assert sum(p.numel() for p in model.parameters()) == params


SMALL = {"bn_chan": 16, "hid_chan": 32, "n_blocks": 2, "upsampling_depth": 3}


@pytest.mark.parametrize("model_class", [TDANet, TDANetLarge])
def test_to_look2hear_round_trip_is_identity(model_class):
    model = model_class(n_src=2, sample_rate=8000, legacy_look2hear=True, **SMALL).eval()
    package = to_look2hear(model)
    # Loaded back with nothing but the file: the same model, arguments and outputs.
    back = model_class.from_look2hear(package)
    assert back.get_model_args() == model.get_model_args()
    mix = torch.randn(2, 1234)
    with torch.inference_mode():
        torch.testing.assert_close(back(mix), model(mix), rtol=0, atol=0)
    # And what the authors' code computes from that file (our transcription of it, which
    # reproduces the reference fixtures) is our model's output, item by item.
    from asteroid_tdanet.bench.look2hear_reference import Look2HearTDANet

    theirs = Look2HearTDANet.from_checkpoint(package).eval()
    with torch.inference_mode():
        for item in mix:
            assert max_rel_error(theirs(item[None]), model(item[None])) <= TOLERANCE


@pytest.mark.parametrize(
    "change, named",
    [
        ({"n_heads": 4}, "n_heads=4 (the released code always uses 8)"),
        ({"dropout": 0.0}, "dropout=0.0 (the released code always uses 0.1)"),
        ({"drop_path": 0.2}, "drop_path=0.2 (the released code always uses 0.1)"),
        ({"legacy_look2hear": False}, "legacy_look2hear=False (the released code always uses"),
        ({"enc_kernel_ms": 0.5, "sample_rate": 16000}, "enc_kernel_ms=0.5 (the released code"),
    ],
)
def test_to_look2hear_refuses_what_the_format_cannot_hold(change, named):
    args = {"n_src": 2, "sample_rate": 8000, "legacy_look2hear": True, **SMALL, **change}
    with pytest.raises(ValueError, match=re.escape(named)):
        to_look2hear(TDANet(**args))
    # checkpoint_blocks only changes memory use: allowed.
    to_look2hear(TDANet(n_src=2, legacy_look2hear=True, checkpoint_blocks=True, **SMALL))


def test_to_look2hear_lists_every_problem_and_refuses_other_models():
    model = TDANet(n_src=2, n_heads=4, dropout=0.0, **SMALL)
    with pytest.raises(ValueError) as info:
        to_look2hear(model)
    message = str(info.value)
    for key in ("n_heads=4", "dropout=0.0", "legacy_look2hear=False"):
        assert key in message
    assert "load this state dict" in message  # how to export a dropout-free model anyway
    with pytest.raises(TypeError, match="not Linear"):
        to_look2hear(torch.nn.Linear(2, 2))


def test_switching_modes_on_a_loaded_model():
    fixture = load_fixture("tdanetbest_small.pt")
    model = TDANet.from_look2hear(fixture)
    assert model.legacy_look2hear
    model.legacy_look2hear = False
    with torch.inference_mode():
        out = model(fixture["inputs"])
    assert max_rel_error(out, fixture["outputs_paper"]) <= TOLERANCE


@pytest.fixture
def small_package():
    fixture = load_fixture("tdanetbest_small.pt")
    return {k: fixture[k] for k in ("model_name", "model_args", "state_dict")}


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.bin"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="not a TDANetBest checkpoint"):
        load_look2hear(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_look2hear(tmp_path / "missing.bin")


def test_wrong_model_name(small_package):
    small_package["model_name"] = "ConvTasNet"
    with pytest.raises(ValueError, match="'ConvTasNet'"):
        load_look2hear(small_package)


def test_missing_and_extra_keys_are_listed(small_package):
    state = dict(small_package["state_dict"])
    del state["sm.unet.res_conv.bias"]
    del state["mask_net.0.weight"]
    state["sm.unet.bogus.weight"] = torch.zeros(3)
    small_package["state_dict"] = state
    with pytest.raises(ValueError) as err:
        load_look2hear(small_package)
    message = str(err.value)
    assert "sm.unet.res_conv.bias" in message and "mask_net.0.weight" in message
    assert "unexpected keys: ['sm.unet.bogus.weight']" in message


def test_shape_mismatch_names_key_and_both_shapes(small_package):
    state = dict(small_package["state_dict"])
    state["sm.unet.res_conv.weight"] = torch.zeros(32, 64, 3)
    small_package["state_dict"] = state
    with pytest.raises(
        ValueError,
        match=re.escape("sm.unet.res_conv.weight: checkpoint (32, 64, 3) vs model (32, 64, 1)"),
    ):
        load_look2hear(small_package)


def test_sample_rate_inconsistent_with_weights(small_package):
    small_package["model_args"] = {**small_package["model_args"], "sample_rate": 16000}
    with pytest.raises(ValueError, match="do not match the weights"):
        load_look2hear(small_package)


def test_tampered_positional_table(small_package):
    state = dict(small_package["state_dict"])
    state[POSITION_KEY] = state[POSITION_KEY] + 1
    small_package["state_dict"] = state
    with pytest.raises(ValueError, match="sinusoidal table"):
        load_look2hear(small_package)


def test_positional_tables_of_other_machines_load_and_other_tables_do_not(small_package):
    # The released table is float32: exp() of the frequencies differs by an ulp between CPUs,
    # which moves row 9,999 by up to ~5e-4. Such a table is accepted; a table one row off, or
    # with another base, is not.
    rows, channels = small_package["state_dict"][POSITION_KEY].shape[-2:]
    position = torch.arange(rows)[:, None].float()

    def table(frequency: torch.Tensor, offset: int = 0) -> torch.Tensor:
        angles = (position + offset) * frequency
        return torch.stack([angles.sin(), angles.cos()], -1).reshape(1, rows, channels)

    exponent = torch.arange(0, channels, 2).float() * -(math.log(10000.0) / channels)
    one_ulp_off = torch.nextafter(exponent.exp(), torch.tensor(1.0))
    for accepted in (table(exponent.exp()), table(one_ulp_off)):
        small_package["state_dict"] = {**small_package["state_dict"], POSITION_KEY: accepted}
        load_look2hear(small_package)
    other_base = torch.arange(0, channels, 2).float() * -(math.log(1000.0) / channels)
    shifted = table(exponent.exp()) + 1e-3  # beyond float32 rounding in the first rows
    for refused in (table(exponent.exp(), offset=1), table(other_base.exp()), shifted):
        small_package["state_dict"] = {**small_package["state_dict"], POSITION_KEY: refused}
        with pytest.raises(ValueError, match="not the sinusoidal table"):
            load_look2hear(small_package)


class _Exploit:
    """Unpickling this would create a file: loading must refuse instead."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_loading_never_executes_pickled_code(tmp_path, small_package):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        pickle.dump({**small_package, "extra": _Exploit(marker)}, f)
    with pytest.raises(ValueError, match="weights_only"):
        load_look2hear(path)
    assert not marker.exists()


def test_positional_table_tolerance_is_float_rounding_only(small_package):
    """A table computed in float64 (rounding differences up to ~5e-4 at row 9,800) loads; an
    offset of 0.01 does not."""
    table = small_package["state_dict"][POSITION_KEY]
    rows, channels = table.shape[-2:]
    position = torch.arange(rows, dtype=torch.float64)[:, None]
    frequency = torch.exp(
        torch.arange(0, channels, 2, dtype=torch.float64) * -(math.log(10000.0) / channels)
    )
    exact = torch.zeros(rows, channels, dtype=torch.float64)
    exact[:, 0::2] = torch.sin(position * frequency)
    exact[:, 1::2] = torch.cos(position * frequency)
    for candidate, accepted in ((exact, True), (exact + 0.01, False)):
        state = dict(small_package["state_dict"])
        state[POSITION_KEY] = candidate.float().reshape(table.shape)
        package = {**small_package, "state_dict": state}
        if accepted:
            load_look2hear(package)
        else:
            with pytest.raises(ValueError, match="sinusoidal table"):
                load_look2hear(package)
