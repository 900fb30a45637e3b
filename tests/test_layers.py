"""Building blocks against closed forms and the ops they replace."""

from __future__ import annotations

import math

import torch
from torch import nn

from asteroid_tdanet.layers import (
    DepthwiseScale,
    DropPath,
    GlobalLayerNorm,
    GlobalSelfAttention,
    LocalAttention,
    sinusoidal_positions,
)


def test_global_layer_norm_is_the_hand_written_gln():
    x = torch.randn(3, 7, 50) * 4 + 2
    norm = GlobalLayerNorm(7)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    mean = x.mean(dim=(1, 2), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2), keepdim=True)
    expected = norm.weight[:, None] * (x - mean) / (var + 1e-8).sqrt() + norm.bias[:, None]
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)


def test_depthwise_scale_equals_grouped_kernel1_conv():
    conv = nn.Conv1d(6, 6, 1, groups=6, bias=True)
    scale = DepthwiseScale(6, bias=True)
    scale.load_state_dict(conv.state_dict())
    x = torch.randn(2, 6, 40)
    torch.testing.assert_close(scale(x), conv(x))
    assert scale.weight.shape == (6, 1, 1)


def test_sinusoidal_positions_closed_form_and_no_length_limit():
    table = sinusoidal_positions(20001, 8)
    for pos in (0, 1, 17, 20000):
        for i in range(4):
            angle = pos / 10000 ** (2 * i / 8)
            assert math.isclose(table[pos, 2 * i].item(), math.sin(angle), abs_tol=2e-3)
            assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=2e-3)


def test_legacy_attention_is_a_per_frame_map():
    attn = GlobalSelfAttention(16, n_heads=4, dropout=0.0, legacy_look2hear=True).eval()
    x = torch.randn(2, 16, 30)
    y = attn.in_norm(x.transpose(1, 2)) + sinusoidal_positions(30, 16)
    value = nn.functional.linear(y, attn.attn.in_proj_weight[32:], attn.attn.in_proj_bias[32:])
    frame = attn.attn.out_proj(value)
    expected = attn.out_norm(2 * frame).transpose(1, 2)
    torch.testing.assert_close(attn(x), expected)
    # The released code at batch size 1: nn.MultiheadAttention over length-1 sequences, one per
    # frame (our layer is batch-first, so frames go in the batch dimension).
    frames = y[0].unsqueeze(1)
    released, _ = attn.attn(frames, frames, frames)
    torch.testing.assert_close(attn.out_norm(2 * released[:, 0]).T, attn(x[:1])[0])


def test_paper_attention_mixes_time_not_batch():
    attn = GlobalSelfAttention(16, n_heads=4, dropout=0.0).eval()
    x = torch.randn(2, 16, 30)
    out = attn(x)
    x2 = x.clone()
    x2[0, :, 5] = torch.randn(16)  # through attention, changes every frame of item 0 only
    out2 = attn(x2)
    assert (out2[0] - out[0]).abs().amax(dim=0).min() > 1e-4
    torch.testing.assert_close(out2[1], out[1])


def test_local_attention_closed_form():
    la = LocalAttention(4, kernel=1)
    x_local, x_global = torch.randn(1, 4, 8), torch.randn(1, 4, 2)
    expected_gate = torch.sigmoid(la.gate(x_global)).repeat_interleave(4, dim=-1)
    expected_value = la.value(x_global).repeat_interleave(4, dim=-1)
    torch.testing.assert_close(
        la(x_local, x_global), la.local(x_local) * expected_gate + expected_value
    )


def test_drop_path_drops_whole_items_and_keeps_expectation():
    drop = DropPath(0.5).train()
    out = drop(torch.ones(4000, 3, 5))
    per_item = out.flatten(1)
    assert set(per_item.unique().tolist()) <= {0.0, 2.0}
    assert (per_item == per_item[:, :1]).all()
    assert abs(out.mean().item() - 1.0) < 0.1
    assert torch.equal(drop.eval()(torch.ones(2, 3)), torch.ones(2, 3))
