"""TDANet's separator as an Asteroid-style masker: the U-block, applied repeatedly, and the masks.

The masker maps encoder features ``(batch, basis, frames)`` to one mask per source
``(batch, n_src, basis, frames)`` and can be reused on its own with any encoder/decoder, like the
maskers of ``asteroid.masknn``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .derived import forward_pass
from .fast import masker_forward, ublock_forward, use_fast_path
from .layers import (
    ConvNorm,
    ConvNormAct,
    DepthwiseScale,
    GlobalAttention,
    GlobalLayerNorm,
    LocalAttention,
    adaptive_avg_pool,
)


class UBlock(nn.Module):
    """TDANet's encoder-decoder block with top-down attention.

    Bottom-up, the block projects its input to ``hid_chan`` channels and builds ``depth`` scales
    (each one half the length of the one above) with depthwise convolutions. The scales are pooled
    to the coarsest length, summed and passed through global attention (GA); GA's output is
    injected into every scale with a kernel-1 local attention (LA), and a top-down decoder of
    kernel-5 LA layers fuses each scale with the (already fused) coarser one, down to the finest.

    Args:
        bn_chan: Input/output channels ``C``.
        hid_chan: Channels inside the block ``N``.
        depth: Number of scales ``D`` (``D - 1`` downsamplings), at least 2.
        n_heads: Attention heads in GA.
        dropout: Dropout in GA.
        drop_path: Stochastic depth in GA.
        legacy_look2hear: Reproduce the released code: its top-down decoder starts from the
            second-coarsest scale fused with the third-coarsest (``LA(X[D-2], X[D-3])``), so the
            coarsest scale and its kernel-1 LA (``inject[D-1]``) are unused; and its attention
            is per frame (see :class:`~asteroid_tdanet.layers.GlobalSelfAttention`).
    """

    def __init__(
        self,
        bn_chan: int = 128,
        hid_chan: int = 512,
        depth: int = 5,
        n_heads: int = 8,
        dropout: float = 0.1,
        drop_path: float = 0.1,
        legacy_look2hear: bool = False,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"upsampling_depth must be at least 2, got {depth}")
        self.depth = depth
        self.legacy_look2hear = legacy_look2hear
        self.proj_in = ConvNormAct(bn_chan, hid_chan, 1)
        self.down = nn.ModuleList(
            ConvNorm(hid_chan, hid_chan, 5, stride=1 if i == 0 else 2, groups=hid_chan)
            for i in range(depth)
        )
        self.global_attn = GlobalAttention(hid_chan, n_heads, dropout, drop_path, legacy_look2hear)
        self.inject = nn.ModuleList(LocalAttention(hid_chan, 1) for _ in range(depth))
        self.fuse = nn.ModuleList(LocalAttention(hid_chan, 5) for _ in range(depth - 1))
        self.proj_out = nn.Conv1d(hid_chan, bn_chan, 1)

    @property
    def top_source(self) -> int:
        """The scale the top-down decoder starts from (fused into scale ``D - 2``)."""
        # The released code indexes the list with ``D - 3``; Python's negative indexing makes that
        # the coarsest scale when D = 2, which we keep.
        return (self.depth - 3) % self.depth if self.legacy_look2hear else self.depth - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, C, T) -> (batch, C, T)``."""
        if use_fast_path(x, self):
            # The same function, time-major and with fewer passes (see asteroid_tdanet.fast).
            with forward_pass():
                return ublock_forward(self, x.mT).mT
        scales = [self.down[0](self.proj_in(x))]
        for down in self.down[1:]:
            scales.append(down(scales[-1]))
        coarsest = scales[-1].shape[-1]
        pooled = scales[-1]
        for scale in scales[:-1]:
            pooled = pooled + adaptive_avg_pool(scale, coarsest)
        glob = self.global_attn(pooled)

        top = self.depth - 2
        # Scale ``top_source`` feeds the decoder's first step; in legacy mode the coarsest scale is
        # never used, so it is not computed.
        needed = {i for i in range(self.depth - 1)} | {self.top_source}
        fused = {i: self.inject[i](scales[i], glob) for i in sorted(needed)}
        y = self.fuse[top](fused[top], fused[self.top_source])
        for i in range(top - 1, -1, -1):
            y = self.fuse[i](fused[i], y)
        return self.proj_out(y) + x


class TDANetMasker(nn.Module):
    """TDANet's separator: bottleneck, the U-block applied ``n_blocks`` times, and the masks.

    ``x0 = conv1x1(gLN(feats)); x1 = U(x0); x_{k+1} = U(P(x0 + x_k))`` and
    ``masks = ReLU(conv(PReLU(x_B)))``, where ``P`` is a depthwise 1x1 convolution and a PReLU,
    and ``U`` shares its weights across the ``n_blocks`` applications.

    Args:
        in_chan: Channels of the encoder features (``basis``).
        n_src: Number of sources (masks).
        bn_chan: Bottleneck channels ``C``.
        hid_chan: Channels inside the U-block ``N``.
        n_blocks: Number of applications ``B`` of the shared U-block.
        upsampling_depth: Scales ``D`` in the U-block.
        n_heads: Attention heads.
        dropout: Dropout in global attention.
        drop_path: Stochastic depth in global attention.
        legacy_look2hear: Reproduce the released checkpoints' computation (see :class:`UBlock`).
        checkpoint_blocks: While training, recompute each U-block application in the backward pass
            instead of storing its activations (activation checkpointing): far less memory for
            about one more forward pass of compute.

    Examples:
        >>> masker = TDANetMasker(in_chan=17, n_src=2, bn_chan=16, hid_chan=32, n_blocks=2,
        ...                       upsampling_depth=3)
        >>> masker(torch.randn(4, 17, 100)).shape
        torch.Size([4, 2, 17, 100])
    """

    def __init__(
        self,
        in_chan: int,
        n_src: int,
        bn_chan: int = 128,
        hid_chan: int = 512,
        n_blocks: int = 16,
        upsampling_depth: int = 5,
        n_heads: int = 8,
        dropout: float = 0.1,
        drop_path: float = 0.1,
        legacy_look2hear: bool = False,
        checkpoint_blocks: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be at least 1, got {n_blocks}")
        if hid_chan % n_heads:
            raise ValueError(f"hid_chan={hid_chan} must be divisible by n_heads={n_heads}")
        self.in_chan = in_chan
        self.n_src = n_src
        self.bn_chan = bn_chan
        self.hid_chan = hid_chan
        self.n_blocks = n_blocks
        self.upsampling_depth = upsampling_depth
        self.n_heads = n_heads
        self.dropout = dropout
        self.drop_path = drop_path
        self.checkpoint_blocks = checkpoint_blocks

        self.in_norm = GlobalLayerNorm(in_chan)
        self.bottleneck = nn.Conv1d(in_chan, bn_chan, 1)
        self.ublock = UBlock(
            bn_chan, hid_chan, upsampling_depth, n_heads, dropout, drop_path, legacy_look2hear
        )
        self.recur_in = nn.Sequential(DepthwiseScale(bn_chan, bias=True), nn.PReLU())
        self.mask_net = nn.Sequential(nn.PReLU(), nn.Conv1d(bn_chan, n_src * in_chan, 1))
        self._compiled_block = None

    @property
    def legacy_look2hear(self) -> bool:
        """Whether the released code's computation is reproduced (see :class:`UBlock`)."""
        return self.ublock.legacy_look2hear

    @legacy_look2hear.setter
    def legacy_look2hear(self, value: bool) -> None:
        self.ublock.legacy_look2hear = bool(value)
        self.ublock.global_attn.mhsa.legacy_look2hear = bool(value)

    def compile_block(self, **compile_kwargs: Any) -> None:
        """Compile the shared U-block with ``torch.compile`` (once, reused by every application).

        Compiling the block rather than the whole unrolled model keeps compile time short.
        Parameters and state dict are unchanged.

        Args:
            **compile_kwargs: Passed to ``torch.compile`` (e.g. ``mode="max-autotune"``).
        """
        # A plain attribute, not a submodule: the state dict keeps its names.
        object.__setattr__(self, "_compiled_block", torch.compile(self.ublock, **compile_kwargs))

    def _block(self, x: torch.Tensor) -> torch.Tensor:
        block = self.ublock if self._compiled_block is None else self._compiled_block
        if self.checkpoint_blocks and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward(self, tf_rep: torch.Tensor) -> torch.Tensor:
        """Estimate masks.

        Args:
            tf_rep: Encoder features, shape ``(batch, in_chan, frames)``.

        Returns:
            Non-negative masks, shape ``(batch, n_src, in_chan, frames)``.
        """
        if self._compiled_block is None and use_fast_path(tf_rep, self):
            # The same function, time-major and with fewer passes (see asteroid_tdanet.fast).
            return masker_forward(self, tf_rep)
        x0 = self.bottleneck(self.in_norm(tf_rep))
        x = self._block(x0)
        for _ in range(self.n_blocks - 1):
            x = self._block(self.recur_in(x0 + x))
        masks = torch.relu(self.mask_net(x))
        return masks.view(masks.shape[0], self.n_src, self.in_chan, masks.shape[-1])

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as plain Python values."""
        return {
            "in_chan": self.in_chan,
            "n_src": self.n_src,
            "bn_chan": self.bn_chan,
            "hid_chan": self.hid_chan,
            "n_blocks": self.n_blocks,
            "upsampling_depth": self.upsampling_depth,
            "n_heads": self.n_heads,
            "dropout": self.dropout,
            "drop_path": self.drop_path,
            "legacy_look2hear": self.legacy_look2hear,
            "checkpoint_blocks": self.checkpoint_blocks,
        }
