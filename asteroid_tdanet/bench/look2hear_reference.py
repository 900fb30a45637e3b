"""The authors' released TDANet computation, transcribed op for op, as a benchmark baseline.

This is OUR transcription of the computation of the released TDANet ("TDANetBest", the code
that produced the checkpoints ``JusperLee/TDANetBest-{4,2}ms-LRS2``), written from the
description in ``docs/tdanet-spec.md``; it is not the authors' code. It exists so that the
benchmark can time "the authors' code" next to ours on the same machine, so it keeps the released
code's choices that matter for speed, including its two defects:

- a hand-written global layer norm (mean, pow, sqrt, div, transposed gain and bias) where
  ``nn.GroupNorm(1, C)`` would compute the same function in one fused op;
- kernel-1 depthwise convolutions as grouped ``nn.Conv1d`` (slow on CPU: one call per group);
- a 10,000-row sinusoidal positional buffer (inputs longer than that many coarsest-scale frames
  fail, as in the released code);
- ``nn.MultiheadAttention`` fed ``(batch, time, channels)`` while it expects
  ``(time, batch, channels)``: it attends across the batch (at batch 1, a per-frame map);
- the top-down wiring defect: the first top-down fusion takes the finer level ``D - 3`` instead
  of the coarsest level ``D - 1``.

Module and parameter names are exactly the released state-dict keys, so a released checkpoint
(``{"model_name", "model_args", "state_dict"}``) loads with ``strict=True``. For outputs that match
the released code, run one item at a time (batch 1), as the released code was used.

Licence: the released code is Apache-2.0 (github.com/JusperLee/TDANet), and so is this
transcription of it; the rest of the package is MIT. See NOTICE and LICENSES/Apache-2.0.txt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LOOK2HEAR_LABEL", "Look2HearTDANet"]

# How benchmark tables name this model: it is not the authors' code itself.
LOOK2HEAR_LABEL = "look2hear-reference (our transcription of the released code)"


class GlobLN(nn.Module):
    """Global layer norm written out as the released code does (no fused kernel).

    Args:
        channels: Number of channels C.

    Input (batch, C, time) -> output of the same shape, normalized over channels and time,
    with a per-channel gain ``gamma`` and bias ``beta``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = list(range(1, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        var = torch.pow(x - mean, 2).mean(dim=dims, keepdim=True)
        normed = (x - mean) / (var + 1e-8).sqrt()
        # Gain and bias broadcast over the last axis, hence the two transposes.
        return (self.gamma * normed.transpose(1, -1) + self.beta).transpose(1, -1)


class ConvNorm(nn.Module):
    """Conv1d ("same" padding for odd kernels) followed by :class:`GlobLN`."""

    def __init__(
        self,
        in_chan: int,
        out_chan: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            in_chan,
            out_chan,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=bias,
        )
        self.norm = GlobLN(out_chan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class ConvNormAct(ConvNorm):
    """:class:`ConvNorm` followed by a single-parameter PReLU."""

    def __init__(self, in_chan: int, out_chan: int, kernel_size: int) -> None:
        super().__init__(in_chan, out_chan, kernel_size)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal table of ``max_len`` rows, added along dim 1 of (batch, time, C)."""

    def __init__(self, channels: int, max_len: int = 10000) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        freqs = torch.exp(
            torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels)
        )
        table = torch.zeros(max_len, channels)
        table[:, 0::2] = torch.sin(position * freqs)
        table[:, 1::2] = torch.cos(position * freqs)
        self.register_buffer("pe", table[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]]


class MultiHeadAttention(nn.Module):
    """LayerNorm + positions, then attention that (defect) runs across the batch axis.

    Input and output (batch, C, time).
    """

    def __init__(self, channels: int, n_heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.pos_enc = PositionalEncoding(channels)
        self.attn_in_norm = nn.LayerNorm(channels)
        # batch_first=False, but fed (batch, time, C): the released defect, kept on purpose.
        self.attn = nn.MultiheadAttention(channels, n_heads, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pos_enc(self.attn_in_norm(x.transpose(1, 2)))
        y = self.attn(y, y, y)[0]
        y = self.norm(y + self.dropout(y))
        return y.transpose(1, 2)


class FFN(nn.Module):
    """1x1 conv + gLN, depthwise k5 conv, ReLU, dropout, 1x1 conv + gLN, dropout."""

    def __init__(self, channels: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.fc1 = ConvNorm(channels, hidden, 1, bias=False)
        self.dwconv = nn.Conv1d(hidden, hidden, 5, padding=2, groups=hidden)
        self.act = nn.ReLU()
        self.fc2 = ConvNorm(hidden, channels, 1, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


def _drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole items with probability ``prob`` (training only)."""
    if prob == 0.0 or not training:
        return x
    keep = 1.0 - prob
    mask = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
    return x / keep * (mask + keep).floor()


class GlobalAttention(nn.Module):
    """GA: residual attention then residual FFN, each behind drop-path."""

    def __init__(self, channels: int, drop_path: float = 0.1) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(channels, 8, 0.1)
        self.mlp = FFN(channels, channels * 2, dropout=0.1)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + _drop_path(self.attn(x), self.drop_path, self.training)
        return x + _drop_path(self.mlp(x), self.drop_path, self.training)


class LocalAttention(nn.Module):
    """LA(x_l, x_g) = a(x_l) * up(sigmoid(b(x_g))) + up(c(x_g)), depthwise convs + gLN."""

    def __init__(self, channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.local_embedding = ConvNorm(
            channels, channels, kernel_size, groups=channels, bias=False
        )
        self.global_embedding = ConvNorm(
            channels, channels, kernel_size, groups=channels, bias=False
        )
        self.global_act = ConvNorm(channels, channels, kernel_size, groups=channels, bias=False)

    def forward(self, x_local: torch.Tensor, x_global: torch.Tensor) -> torch.Tensor:
        length = x_local.shape[-1]
        gate = F.interpolate(torch.sigmoid(self.global_act(x_global)), size=length, mode="nearest")
        shift = F.interpolate(self.global_embedding(x_global), size=length, mode="nearest")
        return self.local_embedding(x_local) * gate + shift


class UBlock(nn.Module):
    """The U-block: multi-scale depthwise encoder, GA, LA injection, defective top-down path.

    Input and output (batch, C, time).
    """

    def __init__(self, out_channels: int, in_channels: int, depth: int) -> None:
        super().__init__()
        if depth < 3:
            raise ValueError(f"upsampling_depth must be >= 3 in the released layout, got {depth}")
        self.depth = depth
        self.proj_1x1 = ConvNormAct(out_channels, in_channels, 1)
        self.spp_dw = nn.ModuleList(
            ConvNorm(in_channels, in_channels, 5, stride=1 if i == 0 else 2, groups=in_channels)
            for i in range(depth)
        )
        self.loc_glo_fus = nn.ModuleList(LocalAttention(in_channels, 1) for _ in range(depth))
        self.res_conv = nn.Conv1d(in_channels, out_channels, 1)
        self.globalatt = GlobalAttention(in_channels, 0.1)
        self.last_layer = nn.ModuleList(LocalAttention(in_channels, 5) for _ in range(depth - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x.clone()
        scales = [self.spp_dw[0](self.proj_1x1(x))]
        for conv in self.spp_dw[1:]:
            scales.append(conv(scales[-1]))
        coarse_len = scales[-1].shape[-1]
        pooled = [F.adaptive_avg_pool1d(s, output_size=coarse_len) for s in scales]
        global_f = self.globalatt(torch.stack(pooled, dim=1).sum(1))
        fused = [fuse(s, global_f) for fuse, s in zip(self.loc_glo_fus, scales, strict=True)]
        top = self.depth - 2
        # Released defect: level top takes the finer level top - 1, not the coarser top + 1.
        expanded = self.last_layer[top](fused[top], fused[top - 1])
        for i in range(top - 1, -1, -1):
            expanded = self.last_layer[i](fused[i], expanded)
        return self.res_conv(expanded) + residual


class Recurrent(nn.Module):
    """The shared U-block applied ``num_blocks`` times with the input re-injected."""

    def __init__(self, out_channels: int, in_channels: int, depth: int, num_blocks: int) -> None:
        super().__init__()
        self.unet = UBlock(out_channels, in_channels, depth)
        self.iter = num_blocks
        self.concat_block = nn.Sequential(
            nn.Conv1d(out_channels, out_channels, 1, groups=out_channels), nn.PReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixture = x.clone()
        for i in range(self.iter):
            x = self.unet(x if i == 0 else self.concat_block(mixture + x))
        return x


class Look2HearTDANet(nn.Module):
    """The released TDANet computation (defects included), released argument names.

    Args:
        out_channels: Bottleneck channels C.
        in_channels: Channels N inside the U-block.
        num_blocks: Number of applications B of the shared U-block.
        upsampling_depth: Number of scales D in the U-block.
        enc_kernel_size: Encoder kernel in milliseconds (4 for TDANet, 2 for TDANet Large).
        num_sources: Number of sources to estimate.
        sample_rate: Sample rate in Hz.

    Forward: (batch, time) or (time,) -> (batch, num_sources, time) or (num_sources, time).
    Run one item at a time to match the released code (the attention mixes batch items).

    Examples:
        >>> model = Look2HearTDANet.from_checkpoint("TDANetBest-4ms-LRS2.bin")  # doctest: +SKIP
        >>> est = model(torch.randn(1, 16000))  # doctest: +SKIP
    """

    def __init__(
        self,
        out_channels: int = 128,
        in_channels: int = 512,
        num_blocks: int = 16,
        upsampling_depth: int = 5,
        enc_kernel_size: float = 4,
        num_sources: int = 2,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        self.model_args = dict(
            out_channels=out_channels,
            in_channels=in_channels,
            num_blocks=num_blocks,
            upsampling_depth=upsampling_depth,
            enc_kernel_size=enc_kernel_size,
            num_sources=num_sources,
            sample_rate=sample_rate,
        )
        self.sample_rate = sample_rate
        self.num_sources = num_sources
        self.kernel = int(enc_kernel_size * sample_rate // 1000)
        if self.kernel < 4:
            raise ValueError(
                f"encoder kernel of {enc_kernel_size} ms at {sample_rate} Hz is "
                f"{self.kernel} samples; need at least 4"
            )
        self.stride = self.kernel // 4
        self.basis = self.kernel // 2 + 1
        self.encoder = nn.Conv1d(
            1, self.basis, self.kernel, stride=self.stride, padding=self.kernel // 2, bias=False
        )
        self.ln = GlobLN(self.basis)
        self.bottleneck = nn.Conv1d(self.basis, out_channels, 1)
        self.sm = Recurrent(out_channels, in_channels, upsampling_depth, num_blocks)
        self.mask_net = nn.Sequential(
            nn.PReLU(), nn.Conv1d(out_channels, num_sources * self.basis, 1)
        )
        self.decoder = nn.ConvTranspose1d(
            num_sources * self.basis,
            num_sources,
            self.kernel,
            stride=self.stride,
            padding=self.kernel // 2,
            bias=False,
        )
        nn.init.xavier_uniform_(self.encoder.weight)
        nn.init.xavier_uniform_(self.decoder.weight)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | Mapping[str, Any]) -> Look2HearTDANet:
        """Build from a released-layout checkpoint (path or loaded dict), loading strictly.

        Args:
            checkpoint: A dict with ``model_args`` and ``state_dict``, or a path to a
                ``torch.save`` of one (loaded with ``weights_only=True``).

        Raises:
            KeyError: if ``model_args`` or ``state_dict`` is missing (the message names the file).
        """
        where = str(checkpoint) if isinstance(checkpoint, str | Path) else "checkpoint dict"
        if isinstance(checkpoint, str | Path):
            checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
        for key in ("model_args", "state_dict"):
            if key not in checkpoint:
                raise KeyError(f"{where}: no '{key}' (found keys {sorted(checkpoint)})")
        model = cls(**checkpoint["model_args"])
        model.load_state_dict(checkpoint["state_dict"], strict=True)
        return model

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        one_d = wav.dim() == 1
        if one_d:
            wav = wav[None]
        if wav.dim() == 3:
            wav = wav.squeeze(1)
        if wav.dim() != 2:
            raise ValueError(f"expected (batch, time) or (time,), got shape {tuple(wav.shape)}")
        batch, length = wav.shape
        k, s = self.kernel, self.stride
        rest = k - (s + length % k) % k
        side = k - s
        x = F.pad(wav, (side, rest + side))

        enc = self.encoder(x[:, None])
        feats = self.sm(self.bottleneck(self.ln(enc)))
        masks = torch.relu(self.mask_net(feats).view(batch, self.num_sources, self.basis, -1))
        masked = (masks * enc[:, None]).view(batch, self.num_sources * self.basis, -1)
        out = self.decoder(masked)[:, :, side : -(rest + side)].contiguous()
        return out[0] if one_d else out
