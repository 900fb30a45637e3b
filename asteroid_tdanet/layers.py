"""Building blocks of TDANet's separator: norms, convolutions, attention and the top-down fusion.

Every block takes and returns ``(batch, channels, time)`` tensors unless stated otherwise, and
computes each batch item independently of the others.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .depthwise import DepthwiseConv1d
from .kernels import linear


def _exporting() -> bool:
    # Under torch.export, shape comparisons between scales are symbolic: resize unconditionally.
    return torch.compiler.is_exporting()


def adaptive_avg_pool(x: torch.Tensor, length: int) -> torch.Tensor:
    """``F.adaptive_avg_pool1d``, also for symbolic lengths (``torch.export`` / ONNX).

    Eagerly this is torch's op; under export, the same windows (``floor(j L / n)`` to
    ``ceil((j + 1) L / n)``) are averaged from a cumulative sum, because the op needs a concrete
    output size.

    Args:
        x: ``(batch, C, L)``.
        length: Output length ``n``.

    Returns:
        ``(batch, C, n)``.
    """
    if not _exporting():
        return F.adaptive_avg_pool1d(x, length)
    size = x.shape[-1]
    index = torch.arange(length, device=x.device)
    start = (index * size) // length
    end = ((index + 1) * size + length - 1) // length
    sums = F.pad(x.cumsum(-1), (1, 0))
    return (sums.index_select(-1, end) - sums.index_select(-1, start)) / (end - start).to(x.dtype)


class GlobalLayerNorm(nn.GroupNorm):
    """Global layer norm (gLN): one mean and variance per item over channels and time.

    Identical to the hand-written gLN of Conv-TasNet / TDANet (``eps`` inside the square root),
    but one fused op instead of five elementwise passes.

    Args:
        channels: Number of channels ``C``; the gain and bias have shape ``(C,)``.
        eps: Added to the variance before the square root.
    """

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__(num_groups=1, num_channels=channels, eps=eps)


class DepthwiseScale(nn.Module):
    """A depthwise 1x1 convolution computed as a per-channel multiply (and add).

    Numerically the same as ``nn.Conv1d(C, C, 1, groups=C)`` and stores its weight with the same
    shape ``(C, 1, 1)``, so state dicts are interchangeable. It exists for speed: on CPU, torch runs
    a grouped kernel-1 convolution as one tiny call per channel.

    Args:
        channels: Number of channels ``C``.
        bias: Whether to add a per-channel bias.
    """

    def __init__(self, channels: int, bias: bool = True) -> None:
        super().__init__()
        reference = nn.Conv1d(channels, channels, 1, groups=channels, bias=bias)
        self.weight = reference.weight  # same initialisation as the convolution it replaces
        self.bias = reference.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale ``x`` of shape ``(batch, C, time)`` channel-wise; same shape out."""
        scale = self.weight.view(1, -1, 1)
        if self.bias is None:
            return x * scale
        return torch.addcmul(self.bias.view(1, -1, 1), x, scale)


def _conv(in_chan: int, out_chan: int, kernel: int, stride: int, groups: int, bias: bool):
    if kernel == 1 and stride == 1 and groups == in_chan == out_chan:
        return DepthwiseScale(in_chan, bias=bias)
    if groups == in_chan == out_chan:
        return DepthwiseConv1d(in_chan, kernel, stride, bias=bias)
    return nn.Conv1d(
        in_chan, out_chan, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=bias
    )


class ConvNorm(nn.Module):
    """Convolution ("same" padding) followed by gLN.

    Args:
        in_chan: Input channels.
        out_chan: Output channels.
        kernel: Kernel size (odd).
        stride: Stride.
        groups: Convolution groups (``in_chan`` for depthwise).
        bias: Whether the convolution has a bias.
    """

    def __init__(
        self,
        in_chan: int,
        out_chan: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv = _conv(in_chan, out_chan, kernel, stride, groups, bias)
        self.norm = GlobalLayerNorm(out_chan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_chan, time) -> (batch, out_chan, ceil(time / stride))``."""
        return self.norm(self.conv(x))


class ConvNormAct(ConvNorm):
    """:class:`ConvNorm` (same arguments) followed by a PReLU with a single slope."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_chan, time) -> (batch, out_chan, ceil(time / stride))``."""
        return self.act(self.norm(self.conv(x)))


class DropPath(nn.Module):
    """Stochastic depth: drops a residual branch for whole batch items while training.

    Args:
        p: Probability of dropping the branch for an item.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, ...) -> (batch, ...)``, surviving items rescaled by ``1 / (1 - p)``."""
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep


def sinusoidal_positions(
    length: int, channels: int, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The sinusoidal positional table of "Attention is all you need", for any length.

    Computed in float32 exactly as the released TDANet builds its (10,000-row) table, so the first
    10,000 rows equal the released buffer; there is no length limit here.

    Args:
        length: Number of positions ``T``.
        channels: Embedding size ``C`` (even).
        device: Device of the result.
        dtype: Dtype of the result.

    Returns:
        Tensor of shape ``(T, C)``: sines in even channels, cosines in odd ones.
    """
    position = torch.arange(length, device=device).unsqueeze(1)
    div_term = torch.exp(
        torch.arange(0, channels, 2, device=device).float() * -(math.log(10000.0) / channels)
    )
    angles = position * div_term
    table = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(length, channels)
    return table.to(dtype)


class GlobalSelfAttention(nn.Module):
    """TDANet's multi-head self-attention (MHSA) over time, with its pre- and post-norms.

    ``y = LayerNorm(x) + positions; y = attention(y); return LayerNorm(y + Dropout(y))``.

    Args:
        channels: Feature size ``N``.
        n_heads: Attention heads.
        dropout: Dropout on attention weights and on the output branch.
        legacy_look2hear: Compute what the released code computes: its attention layer receives
            ``(batch, time, channels)`` but expects ``(time, batch, channels)``, so it attends
            across the batch; at batch size 1 every frame attends only to itself, which is the
            per-frame map ``out_proj(v_proj(y))``. We compute that map for every item separately
            (the released code mixes items when the batch is larger than one). The query and key
            projections are then unused.
    """

    def __init__(
        self, channels: int, n_heads: int = 8, dropout: float = 0.1, legacy_look2hear: bool = False
    ) -> None:
        super().__init__()
        self.in_norm = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, n_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out_norm = nn.LayerNorm(channels)
        self.legacy_look2hear = legacy_look2hear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, N, time) -> (batch, N, time)``."""
        y = x.transpose(1, 2)
        y = self.in_norm(y) + sinusoidal_positions(y.shape[1], y.shape[2], y.device, y.dtype)
        y = self._per_frame(y) if self.legacy_look2hear else self._over_time(y)
        y = self.out_norm(y + self.dropout(y))
        return y.transpose(1, 2)

    def _over_time(self, y: torch.Tensor) -> torch.Tensor:
        # nn.MultiheadAttention's weights, but scaled_dot_product_attention directly: it picks a
        # fused kernel (flash on CPU and GPU) whose memory grows linearly with length, where the
        # module's own path may materialise the (time x time) weights.
        heads = self.attn.num_heads
        q, k, v = linear(y, self.attn.in_proj_weight, self.attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
        dropout = self.attn.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return linear(out.transpose(1, 2).flatten(2), *self._out_proj())

    def _per_frame(self, y: torch.Tensor) -> torch.Tensor:
        # A frame attending only to itself has attention weight 1 in every head; the attention
        # dropout then zeroes (or rescales) that weight per frame and head, as it does there.
        channels = y.shape[-1]
        w_v = self.attn.in_proj_weight[2 * channels :]
        b_v = self.attn.in_proj_bias[2 * channels :] if self.attn.in_proj_bias is not None else None
        v = linear(y, w_v, b_v)
        if self.training and self.attn.dropout > 0:
            heads = self.attn.num_heads
            weights = F.dropout(v.new_ones(*v.shape[:2], heads, 1), self.attn.dropout)
            v = (v.unflatten(-1, (heads, channels // heads)) * weights).flatten(-2)
        return linear(v, *self._out_proj())

    def _out_proj(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.attn.out_proj.weight, self.attn.out_proj.bias


class FeedForward(nn.Module):
    """TDANet's convolutional feed-forward network.

    ``1x1 conv + gLN -> depthwise conv (k=5) -> ReLU -> Dropout -> 1x1 conv + gLN -> Dropout``.

    Args:
        channels: Input and output channels ``N``.
        hidden: Hidden channels (``2N`` in TDANet).
        dropout: Dropout probability.
    """

    def __init__(self, channels: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.fc1 = ConvNorm(channels, hidden, 1, bias=False)
        self.dwconv = DepthwiseConv1d(hidden, 5)
        self.fc2 = ConvNorm(hidden, channels, 1, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, N, time) -> (batch, N, time)``."""
        x = self.drop(F.relu(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class GlobalAttention(nn.Module):
    """The global attention (GA) module: MHSA and FFN, each as a residual with drop-path.

    Args:
        channels: Feature size ``N``.
        n_heads: Attention heads.
        dropout: Dropout inside MHSA and FFN.
        drop_path: Stochastic-depth probability of each residual branch.
        legacy_look2hear: See :class:`GlobalSelfAttention`.
    """

    def __init__(
        self,
        channels: int,
        n_heads: int = 8,
        dropout: float = 0.1,
        drop_path: float = 0.1,
        legacy_look2hear: bool = False,
    ) -> None:
        super().__init__()
        self.mhsa = GlobalSelfAttention(channels, n_heads, dropout, legacy_look2hear)
        self.ffn = FeedForward(channels, 2 * channels, dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, N, time) -> (batch, N, time)``."""
        x = x + self.drop_path(self.mhsa(x))
        return x + self.drop_path(self.ffn(x))


class LocalAttention(nn.Module):
    """Local attention (LA): a local signal gated and shifted by a (coarser) global signal.

    ``LA(x_l, x_g) = local(x_l) * up(sigmoid(gate(x_g))) + up(value(x_g))``, where the three maps
    are depthwise convolutions (no bias) each followed by gLN, and ``up`` is a nearest-neighbour
    resize to the length of ``x_l``.

    Args:
        channels: Channels of both inputs.
        kernel: Kernel size of the depthwise convolutions (1 or 5 in TDANet).
    """

    def __init__(self, channels: int, kernel: int = 1) -> None:
        super().__init__()
        self.local = ConvNorm(channels, channels, kernel, groups=channels, bias=False)
        self.gate = ConvNorm(channels, channels, kernel, groups=channels, bias=False)
        self.value = ConvNorm(channels, channels, kernel, groups=channels, bias=False)

    def forward(self, x_local: torch.Tensor, x_global: torch.Tensor) -> torch.Tensor:
        """Fuse ``x_local`` ``(batch, C, T)`` with ``x_global`` ``(batch, C, T')``.

        Returns ``(batch, C, T)``, for any ``T'`` (shorter, equal or longer).
        """
        length = x_local.shape[-1]
        gate = torch.sigmoid(self.gate(x_global))
        value = self.value(x_global)
        if x_global.shape[-1] != length or _exporting():
            gate = F.interpolate(gate, size=length, mode="nearest")
            value = F.interpolate(value, size=length, mode="nearest")
        return torch.addcmul(value, self.local(x_local), gate)
