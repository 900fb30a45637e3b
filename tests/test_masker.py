"""The separator on its own: Asteroid masker conventions, compiled block."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY

from asteroid_tdanet import TDANet, TDANetMasker
from asteroid_tdanet.masker import UBlock


def test_masker_shapes_and_config_round_trip():
    masker = TDANetMasker(in_chan=17, n_src=3, **TINY)
    masks = masker(torch.randn(2, 17, 123))
    assert masks.shape == (2, 3, 17, 123) and (masks >= 0).all()
    clone = TDANetMasker(**masker.get_config())
    assert clone.get_config() == masker.get_config()
    assert all(isinstance(v, (int, float, bool)) for v in masker.get_config().values())
    clone.load_state_dict(masker.state_dict())


def test_upsampling_depth_must_allow_a_top_down_path():
    with pytest.raises(ValueError, match="upsampling_depth"):
        TDANetMasker(in_chan=17, n_src=2, upsampling_depth=1)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        TDANetMasker(in_chan=17, n_src=2, hid_chan=30, n_heads=8)


def test_compiled_block_equals_eager_and_keeps_the_state_dict():
    model = TDANet(n_src=2, sample_rate=8000, **TINY).eval()
    keys = list(model.state_dict())
    mix = torch.randn(2, 3000)
    with torch.inference_mode():
        eager = model(mix)
    model.masker.compile_block(dynamic=False)
    with torch.inference_mode():
        compiled = model(mix)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    assert list(model.state_dict()) == keys


def test_a_u_block_called_alone_measures_and_uses_its_product_kernels(kernel_choice):
    # UBlock.forward's fast path runs as a forward pass of its own: its matrix products are
    # measured (kernels.linear measures only within a pass) and kept copies serve them.
    from asteroid_tdanet import kernels

    kernel_choice(None)
    torch.manual_seed(0)
    block = UBlock(bn_chan=8, hid_chan=16, depth=3, n_heads=2).eval()
    x = torch.randn(1, 8, 40)
    with torch.inference_mode():
        want = block(x)
        for _ in range(3 * (kernels.WARMUP_CALLS + kernels.TIMED_CALLS)):
            torch.testing.assert_close(block(x), want)
    assert kernels.chosen_kernels() and not kernels._trials
