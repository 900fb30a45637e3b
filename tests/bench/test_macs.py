"""MAC counting: exact counts of small layers against hand-computed values, and the guard."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asteroid_tdanet import kernels
from asteroid_tdanet.bench.macs import (
    UncountedOpError,
    count_macs,
    count_macs_detailed,
    count_macs_ptflops,
    is_heavy_op,
)


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        # Cout * Cin * K * Lout = 6 * 4 * 3 * 10
        (nn.Conv1d(4, 6, 3, padding=1), (1, 4, 10), 720),
        # batch 3 triples it
        (nn.Conv1d(4, 6, 3, padding=1), (3, 4, 10), 3 * 720),
        # depthwise, stride 2: Lout = (20 + 4 - 5) // 2 + 1 = 10; 8 * 1 * 5 * 10
        (nn.Conv1d(8, 8, 5, stride=2, padding=2, groups=8), (1, 8, 20), 400),
        # 2 groups: Lout = 8; Cout * (Cin / groups) * K * Lout = 4 * 4 * 3 * 8
        (nn.Conv1d(8, 4, 3, groups=2), (1, 8, 10), 384),
        # kernel-1 depthwise as a grouped conv: one MAC per channel and frame
        (nn.Conv1d(8, 8, 1, groups=8), (1, 8, 10), 80),
        # transposed: every input frame meets Cout * K weights per input channel: 10 * 6 * 2 * 16
        (nn.ConvTranspose1d(6, 2, 16, stride=4), (1, 6, 10), 1920),
        # linear on (1, 5, 8): 5 * 8 * 3
        (nn.Linear(8, 3), (1, 5, 8), 120),
    ],
)
def test_layer_macs_match_hand_counts(layer, shape, expected):
    assert count_macs_detailed(layer, torch.randn(*shape)).macs == expected


class _MHA(nn.Module):
    def __init__(self, need_weights: bool, batch_first: bool = False) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=batch_first)
        self.need_weights = need_weights

    def forward(self, x):
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


# E = 8, 2 heads of 4, L = 5, batch 1: in-projection 3 * 5 * 8 * 8 = 960, scores 2 * 5 * 5 * 4
# = 200, weighted values 200, out-projection 5 * 8 * 8 = 320.
MHA_MACS = 960 + 200 + 200 + 320


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_counted_on_both_paths(need_weights):
    # need_weights=False goes through the fused CPU attention kernel: our registered formula.
    assert count_macs_detailed(_MHA(need_weights), torch.randn(5, 1, 8)).macs == MHA_MACS


def test_fast_path_attention_is_counted_with_the_fast_path_disabled():
    assert count_macs_detailed(_MHA(False, batch_first=True), torch.randn(1, 5, 8)).macs == MHA_MACS


def test_cpu_fused_attention_formula():
    class FusedCPU(nn.Module):
        def forward(self, q, k, v):
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[0]

    q, k, v = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 7, 4), torch.randn(1, 2, 7, 4)
    counted = count_macs_detailed(FusedCPU(), q, k, v)
    # batch * heads * (Lq * Lk * E for the scores + Lq * Lk * E for the values) = 2 * (140 + 140)
    assert counted.macs == 560
    assert list(counted.by_op) == ["aten._scaled_dot_product_flash_attention_for_cpu"]


def test_direct_backend_transposed_conv_is_counted():
    class SlowTranspose(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(6, 2, 1, 16))

        def forward(self, x):
            return torch._C._nn.slow_conv_transpose2d(x, self.weight, (1, 16), None, (1, 4))

    # the same arithmetic as ConvTranspose1d(6, 2, 16, stride=4) on 10 frames: 10 * 6 * 2 * 16
    assert count_macs_detailed(SlowTranspose(), torch.randn(1, 6, 1, 10)).macs == 1920


def test_guard_fails_on_fused_attention_fast_path():
    with pytest.raises(UncountedOpError, match="_native_multi_head_attention"):
        count_macs_detailed(
            _MHA(False, batch_first=True), torch.randn(1, 5, 8), disable_mha_fastpath=False
        )


def test_guard_fails_on_an_op_without_formula():
    class Dot(nn.Module):
        def forward(self, x):
            return torch.dot(x, x)

    with pytest.raises(UncountedOpError, match="aten.dot"):
        count_macs_detailed(Dot(), torch.randn(5))
    lenient = count_macs_detailed(Dot(), torch.randn(5), strict=False)
    assert lenient.uncounted == {"aten.dot": 1}


class _Projection(nn.Module):
    """(batch, time, 48) -> (batch, time, 24) through kernels.linear, as TDANet's layers do."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(48, 24)

    def forward(self, x):
        return kernels.linear(x, self.proj.weight, self.proj.bias)


def test_products_count_the_same_whichever_kernel_this_cpu_chose(kernel_choice):
    # oneDNN's matmul is chosen per CPU and shape at first use, and the counter has no formula
    # for it: the count must not depend on that choice (it once did: 3.51 vs 4.58 GMAC/s for
    # TDANet), nor on the kernels being still measured (they alternate then).
    for onednn in (False, True, None):
        kernel_choice(onednn)
        for _ in range(3):
            count = count_macs_detailed(_Projection(), torch.randn(2, 7, 48))
            assert count.macs == 2 * 7 * 48 * 24
        assert not kernels._trials  # a dispatch mode is active: nothing is measured


class _Wave(nn.Module):
    """(batch, time) -> (batch, 4, frames): one strided conv, no bias."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 16, stride=8, bias=False)

    def forward(self, wav):
        return self.conv(wav[:, None])


def test_count_macs_on_a_waveform_model():
    # frames = (800 - 16) // 8 + 1 = 99; 4 * 16 * 99
    assert count_macs(_Wave(), 800) == 6336
    assert count_macs(_Wave(), 800, batch_size=2) == 2 * 6336


def test_count_macs_restores_train_mode_and_rejects_empty_input():
    model = _Wave().train()
    count_macs(model, 100)
    assert model.training
    with pytest.raises(ValueError, match="num_samples"):
        count_macs(model, 0)


def test_ptflops_agrees_on_a_plain_conv():
    pytest.importorskip("ptflops")
    assert count_macs_ptflops(_Wave(), 800) == 6336


@pytest.mark.parametrize(
    "name",
    [
        "mm",
        "addmm",
        "bmm",
        "baddbmm",
        "_scaled_mm",
        "convolution",
        "_slow_conv2d_forward",
        "_native_multi_head_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
        "dot",
        "mv",
        "mkldnn_rnn_layer",
        "_fft_r2c",
        "linear",
        "_linear_pointwise",
    ],
)
def test_heavy_ops(name):
    assert is_heavy_op(name)


@pytest.mark.parametrize(
    "name",
    [
        "cummax",
        "upsample_nearest1d",
        "add",
        "mul",
        "native_group_norm",
        "native_layer_norm",
        "_prelu_kernel",
        "addcmul",
        "_softmax",
        "_convert_weight_to_int4pack",
        "copy_",
        "upsample_linear1d",
    ],
)
def test_light_ops(name):
    assert not is_heavy_op(name)
