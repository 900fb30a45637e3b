"""Depthwise 1-D convolution with a faster weight gradient on the CPU.

For a depthwise kernel (``groups = channels``), torch's CPU convolution backward computes the
weight gradient with a general grouped-convolution kernel that is slow for TDANet's shapes
(kernel 5, a few hundred frames). The gradient of tap ``k`` of channel ``c`` is only the sum, over
batch and time, of the output gradient times the input shifted by ``k``: ``K`` elementwise
products and sums. :class:`DepthwiseConv1d` is an ``nn.Conv1d`` (same parameters and state dict,
same forward) that computes its weight gradient that way, and its input gradient with torch's own
kernel, wherever autograd records a graph on the CPU; everywhere else (inference, GPUs,
autocast, ``torch.compile``, export, tracing) it is the plain convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["DepthwiseConv1d", "depthwise_conv1d"]


class _DepthwiseConv1d(torch.autograd.Function):
    """``F.conv1d(x, weight, bias, stride, pad, groups=C)`` with the backward pass above."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, pad: int):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.pad = stride, pad
        return F.conv1d(x, weight, bias, stride, pad, 1, weight.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, pad = ctx.stride, ctx.pad
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            mask = [True, False, False]
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [stride], [pad], [1], False, [0], weight.shape[0], mask
            )[0]
        if ctx.needs_input_grad[1]:
            # Tap k pairs output frame t with input sample t * stride + k - pad.
            padded = F.pad(x, (pad, pad))
            span = (grad.shape[-1] - 1) * stride + 1
            taps = [
                (padded[..., k : k + span : stride] * grad).sum((0, 2))
                for k in range(weight.shape[-1])
            ]
            grad_w = torch.stack(taps, -1).view_as(weight)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2))
        return grad_x, grad_w, grad_b, None, None


def _records_cpu_graph(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        torch.is_grad_enabled()
        and (x.requires_grad or weight.requires_grad)
        and x.device.type == "cpu"
        and x.dtype == weight.dtype
        and x.dtype in (torch.float32, torch.float64)
        and x.dim() == 3
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and not torch.jit.is_tracing()
    )


def depthwise_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    pad: int = 0,
) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, stride, pad, groups=C)``, with the faster CPU backward pass.

    Args:
        x: ``(batch, C, time)``.
        weight: ``(C, 1, K)``.
        bias: ``(C,)`` or None.
        stride: Stride.
        pad: Zeros added on both sides of the time axis.

    Returns:
        ``(batch, C, (time + 2 * pad - K) // stride + 1)``.
    """
    if _records_cpu_graph(x, weight):
        return _DepthwiseConv1d.apply(x, weight, bias, stride, pad)
    return F.conv1d(x, weight, bias, stride, pad, 1, weight.shape[0])


class DepthwiseConv1d(nn.Conv1d):
    """``nn.Conv1d(C, C, kernel, stride, padding=(kernel - 1) // 2, groups=C)`` (module doc).

    Args:
        channels: Channels ``C``.
        kernel: Kernel size ``K`` (odd, for "same" padding).
        stride: Stride.
        bias: Whether to add a per-channel bias.
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1, bias: bool = True) -> None:
        padding = (kernel - 1) // 2
        super().__init__(channels, channels, kernel, stride, padding, groups=channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, time) -> (batch, C, (time + 2 * padding - K) // stride + 1)``."""
        return depthwise_conv1d(x, self.weight, self.bias, self.stride[0], self.padding[0])
