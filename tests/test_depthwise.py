"""The depthwise convolution's backward pass against torch's convolution and finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from asteroid_tdanet import TDANet
from asteroid_tdanet.depthwise import DepthwiseConv1d, depthwise_conv1d


def grads(fn, x, weight, bias, out_grad):
    inputs = [t for t in (x, weight, bias) if t is not None and t.requires_grad]
    return torch.autograd.grad(fn(x, weight, bias), inputs, out_grad)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("length", [1, 2, 7, 12, 13])
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradients_equal_torch_convolution(stride, kernel, length, with_bias):
    gen = torch.Generator().manual_seed(length * 10 + kernel + stride)
    x = torch.randn(3, 4, length, dtype=torch.float64, generator=gen, requires_grad=True)
    weight = torch.randn(4, 1, kernel, dtype=torch.float64, generator=gen, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    bias = bias if with_bias else None
    pad = (kernel - 1) // 2

    def ours(x, w, b):
        return depthwise_conv1d(x, w, b, stride, pad)

    def reference(x, w, b):
        return F.conv1d(x, w, b, stride, pad, 1, 4)

    out = ours(x, weight, bias)
    assert out.grad_fn is not None and "_DepthwiseConv1d" in type(out.grad_fn).__name__
    torch.testing.assert_close(out, reference(x, weight, bias), rtol=0, atol=1e-12)
    out_grad = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    got_all = grads(ours, x, weight, bias, out_grad)
    for got, want in zip(got_all, grads(reference, x, weight, bias, out_grad), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # And against finite differences, independently of torch's convolution backward.
    assert torch.autograd.gradcheck(ours, (x, weight, bias))


def test_only_the_gradients_asked_for():
    x = torch.randn(2, 3, 9, dtype=torch.float64)
    conv = DepthwiseConv1d(3, 5, stride=2).double()
    (weight_grad,) = torch.autograd.grad(conv(x).square().sum(), conv.weight)  # input frozen
    conv.weight.requires_grad_(False)
    conv.bias.requires_grad_(False)
    x.requires_grad_(True)
    (x_grad,) = torch.autograd.grad(conv(x).square().sum(), x)  # parameters frozen
    reference = nn.Conv1d(3, 3, 5, 2, 2, groups=3).double()
    reference.load_state_dict(conv.state_dict())
    reference.weight.requires_grad_(True)
    want_w, want_x = torch.autograd.grad(reference(x).square().sum(), (reference.weight, x))
    torch.testing.assert_close(weight_grad, want_w, rtol=0, atol=1e-12)
    torch.testing.assert_close(x_grad, want_x, rtol=0, atol=1e-12)


def test_the_plain_convolution_runs_where_no_graph_is_recorded():
    conv = DepthwiseConv1d(4, 5)
    x = torch.randn(1, 4, 20)
    with torch.no_grad():
        assert conv(x).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "_DepthwiseConv1d" not in type(conv(x).grad_fn).__name__
    assert "_DepthwiseConv1d" in type(conv(x).grad_fn).__name__


def test_same_state_dict_as_the_convolution_it_replaces():
    conv = DepthwiseConv1d(6, 5, stride=2, bias=False)
    reference = nn.Conv1d(6, 6, 5, 2, padding=2, groups=6, bias=False)
    assert {k: v.shape for k, v in conv.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    conv.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 11)
    torch.testing.assert_close(conv(x), reference(x), rtol=0, atol=0)


def test_tdanet_trains_through_it():
    model = TDANet(n_src=2, bn_chan=8, hid_chan=8, n_blocks=1, upsampling_depth=3, n_heads=2)
    used = [m for m in model.modules() if isinstance(m, DepthwiseConv1d)]
    assert len(used) >= 3  # the downsampling convolutions and the feed-forward's
    model(torch.randn(2, 800)).square().sum().backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in used)
