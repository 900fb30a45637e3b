"""The separator's fast path: the same function as its modules, in time-major layout.

TDANet's cost on a CPU is not its multiply-adds but torch's slow kernels for small ops and the
many elementwise passes over ``(hid_chan x time)`` activations. This module computes
:class:`~asteroid_tdanet.masker.TDANetMasker` and :class:`~asteroid_tdanet.masker.UBlock` from
their own parameters, with activations kept as ``(batch, time, channels)``:

* every 1x1 convolution is a plain matrix product on contiguous rows
  (:func:`~asteroid_tdanet.kernels.linear`: in inference, MKL's or oneDNN's, whichever is
  measured faster for the shape); in
  ``(batch, channels, time)`` layout torch sends some of them (the FFN's, at the coarsest scale)
  to its im2col fallback ``_slow_conv2d_forward``;
* depthwise convolutions, strided ones included, run as channels-last 2-D convolutions, which
  oneDNN serves with its fast kernel, where channels-first inputs of some lengths fall back to
  ``_slow_conv2d_forward`` (over 1 ms per call);
* local attention is one multiply-add ``y * up(P) + up(Q)``: the local branch's gLN becomes a
  per-channel affine of ``y`` and merges with the gate, so ``P`` and ``Q`` are computed at the
  coarse length and the nearest upsampling is a broadcast (exact halvings) or one row gather;
* kernel-1 depthwise convolutions followed by gLN need no pass at all: their gLN statistics
  follow from the input's per-channel means and variances.

In inference on float32 activations, the depthwise convolutions, each gLN with what follows it
(gate and value, sigmoid, PReLU) and the pooling of the scales run through fused kernels
compiled for the CPU at first use (:mod:`asteroid_tdanet.native`), where a C compiler is
available; the torch operations above serve otherwise, and in training and float64. The calls a
U-block makes on either side of its global attention are recorded at its first application in a
forward pass and run from the recording by the others (:mod:`asteroid_tdanet.programs`;
``TDANET_KERNEL_PROGRAMS=0`` calls them one by one).

The fast path serves inference: where autograd records a graph (training), the plain modules
run, because their backward pass is faster (one training step of the demo's model, batch 4 of
1.5 s at 8 kHz: about 190 ms plain against 215 ms through the fast path, on one thread, AVX-512
and AVX2 alike). Everything here is ordinary differentiable torch all the same, so
``fast_path_in_training(True)`` (or ``TDANET_FAST_PATH_TRAINING=1``) trains through it with the
same gradients; in training mode the global attention runs through its own module, so dropout
draws the same random numbers as the plain path. The fast path is on by default;
``set_fast_path(False)``, the ``fast_path(False)`` context manager or the environment variable
``TDANET_FAST_PATH=0`` switch it off. Under ``torch.compile``, ``torch.export`` (ONNX)
and tracing the plain modules run: compilers do their own fusion and export needs no tricks.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from . import native, programs
from .derived import forward_pass
from .kernels import linear
from .layers import DepthwiseScale, sinusoidal_positions
from .switch import Switch

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .layers import ConvNormAct, GlobalAttention, LocalAttention
    from .masker import TDANetMasker, UBlock

__all__ = [
    "fast_path",
    "fast_path_enabled",
    "fast_path_in_training",
    "kernel_programs",
    "masker_forward",
    "records_graph",
    "set_fast_path",
    "set_fast_path_in_training",
    "ublock_forward",
    "use_fast_path",
]

_switch = Switch("TDANET_FAST_PATH")
_training_switch = Switch("TDANET_FAST_PATH_TRAINING", default=False)
# Whether the fused kernels' calls are recorded once per pass and run from the recording.
_programs = Switch("TDANET_KERNEL_PROGRAMS")


def fast_path_enabled() -> bool:
    """Whether the separator's fast path is switched on (it is by default)."""
    return _switch.enabled


def set_fast_path(enabled: bool) -> None:
    """Switch the separator's fast path on or off for the whole process."""
    _switch.set(enabled)


def fast_path(enabled: bool) -> AbstractContextManager[None]:
    """Run the block with the fast path switched on or off, then restore the previous setting."""
    return _switch.scoped(enabled)


def kernel_programs(enabled: bool) -> AbstractContextManager[None]:
    """Run the block with the fused kernels' calls recorded once per forward pass and run from
    the recording (the default), or called one by one; then restore the previous setting."""
    return _programs.scoped(enabled)


def set_fast_path_in_training(enabled: bool) -> None:
    """Whether the fast path also runs where autograd records a graph (off by default)."""
    _training_switch.set(enabled)


def fast_path_in_training(enabled: bool) -> AbstractContextManager[None]:
    """Run the block with the fast path allowed (or not) in training, then restore the setting."""
    return _training_switch.scoped(enabled)


def records_graph(x: torch.Tensor, module: nn.Module | None = None) -> bool:
    """Whether a forward pass of ``module`` on ``x`` now builds an autograd graph."""
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or (
        module is not None and any(p.requires_grad for p in module.parameters())
    )


def use_fast_path(x: torch.Tensor, module: nn.Module | None = None) -> bool:
    """Whether the fast path applies to input ``x`` of ``module`` now.

    It does when switched on, for float32/float64 tensors on the CPU (where it was measured to
    be faster) outside autocast (it takes gLN statistics from sums, which need full precision),
    not while compiling, exporting or tracing, and not where autograd records a graph unless
    :func:`fast_path_in_training` allows it (the plain modules' backward pass is faster).
    """
    return (
        _switch.enabled
        and (_training_switch.enabled or not records_graph(x, module))
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and not torch.jit.is_tracing()
    )


# ---------------------------------------------------------------------------------------------
# Layout helpers: a contiguous (batch, T, C) tensor is, without a copy, a channels-last
# (batch, C, 1, T) image, the layout in which oneDNN runs depthwise convolutions fast.


def _as_image(x: torch.Tensor) -> torch.Tensor:
    """``(B, T, C)`` -> ``(B, C, 1, T)`` view (channels-last if ``x`` is contiguous)."""
    return x.mT.unsqueeze(2)


def _from_image(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, 1, T)`` -> ``(B, T, C)`` view (contiguous if the image is channels-last)."""
    return x.squeeze(2).mT


def pointwise(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """A 1x1 ``nn.Conv1d`` applied to time-major ``x`` ``(B, T, C_in)`` -> ``(B, T, C_out)``."""
    return linear(x, conv.weight.squeeze(-1), conv.bias)


def kernels_fit(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether the fused kernels (:mod:`~asteroid_tdanet.native`) serve ``module`` on ``x`` now.

    Decided once per forward pass: the fast path's calls then skip the kernels' own checks
    (several hundred calls per pass, each check costing as much as a small call). Parameters
    must be float32, on the CPU and contiguous, as ``x`` must be, and of the shapes their layers
    declare, with no parametrization (whose weights are recomputed, maybe strided, at each
    access); else torch's operations run (and raise their own errors on wrong shapes).
    """
    return (
        native.usable(x)
        and all(
            p.dtype == torch.float32 and p.is_cpu and p.is_contiguous() for p in module.parameters()
        )
        and all(_kernel_layer(layer) for layer in module.modules())
        and all(_is_depthwise(conv) for conv in _depthwise_sites(module))
    )


def _depthwise_sites(module: nn.Module):
    """The layers of a masker or U-block that the fast path runs as depthwise convolutions (a
    ``DepthwiseScale`` for kernel 1, else a ``Conv1d``); none for other modules."""
    block = getattr(module, "ublock", module)
    if not all(hasattr(block, name) for name in ("down", "global_attn", "inject", "fuse")):
        return
    yield from (down.conv for down in block.down)
    yield block.global_attn.ffn.dwconv
    for la in (*block.inject, *block.fuse):
        yield from (la.local.conv, la.gate.conv, la.value.conv)


def _is_depthwise(conv: nn.Module) -> bool:
    """A ``Conv1d`` there must be depthwise (a full 1x1 one would pass the other checks)."""
    return not isinstance(conv, torch.nn.Conv1d) or (
        conv.groups == conv.in_channels == conv.out_channels
    )


def _kernel_layer(layer: nn.Module) -> bool:
    """Whether the parameters the kernels read from ``layer`` have the shapes it declares."""
    if parametrize.is_parametrized(layer):
        return False
    if isinstance(layer, torch.nn.GroupNorm):
        return not layer.affine or layer.weight.shape == layer.bias.shape == (layer.num_channels,)
    if isinstance(layer, torch.nn.Conv1d) and (layer.groups > 1 or layer.kernel_size[0] > 1):
        # Every convolution but a 1x1 one runs as a fused depthwise convolution.
        channels, kernel = layer.out_channels, layer.kernel_size[0]
        return (
            _kernel_conv(layer)
            and layer.groups == layer.in_channels == channels
            and layer.weight.shape == (channels, 1, kernel)
            and (layer.bias is None or layer.bias.shape == (channels,))
        )
    conv, norm = getattr(layer, "conv", None), getattr(layer, "norm", None)
    if isinstance(conv, DepthwiseScale) and isinstance(norm, torch.nn.GroupNorm):
        channels = norm.num_channels
        return conv.weight.shape == (channels, 1, 1) and (
            conv.bias is None or conv.bias.shape == (channels,)
        )
    return True


def _kernel_conv(conv: nn.Conv1d) -> bool:
    """Whether the fused depthwise convolution computes ``conv`` (zero padding by a number)."""
    numeric = isinstance(conv.padding, tuple)  # not "same"/"valid"
    return numeric and conv.dilation == (1,) and conv.padding_mode == "zeros"


def depthwise(x: torch.Tensor, conv: nn.Conv1d, fused: bool = False) -> torch.Tensor:
    """A depthwise ``nn.Conv1d`` ("same" padding, any stride) on ``(B, T, C)`` -> ``(B, T', C)``.

    ``fused``: the fused kernels serve this forward pass (:func:`kernels_fit`).
    """
    if fused:
        args = (conv.weight, conv.bias, conv.stride[0], conv.padding[0])
        return native.trusted_depthwise(x.contiguous(), *args)
    out = F.conv2d(
        _as_image(x.contiguous()),
        conv.weight.unsqueeze(2),
        conv.bias,
        (1, conv.stride[0]),
        (0, conv.padding[0]),
        1,
        conv.groups,
    )
    return _from_image(out)


def _in_place() -> bool:
    """Whether activations may be overwritten: nothing is recorded for a backward pass."""
    return not torch.is_grad_enabled()


def prelu(act: nn.PReLU, y: torch.Tensor) -> torch.Tensor:
    """``act(y)``; in inference, a single-slope PReLU overwrites ``y`` (no new activation)."""
    if _in_place() and act.weight.numel() == 1:
        return F.leaky_relu_(y, float(act.weight))
    return act(y)


def centered(y: torch.Tensor, overwrite: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``y`` minus its mean over all but the batch axis, and its variance there.

    Two passes (mean, then the dot product of the centred values): the one-pass
    ``E[y^2] - E[y]^2`` loses digits to cancellation when the mean is large against the spread
    (trained or perturbed weights give that; so does torch's channels-last ``group_norm``).

    Args:
        y: ``(B, ...)``.
        overwrite: In inference, centre ``y`` in place (its caller no longer needs it).

    Returns:
        The centred tensor (``y``'s shape) and the population variances ``(B, 1)``.
    """
    flat = y.reshape(y.shape[0], -1)
    mean = flat.mean(-1, keepdim=True)
    # (reshape copies a non-contiguous y: then the copy is centred.)
    flat = flat.sub_(mean) if overwrite and _in_place() else flat - mean
    # vecdot reduces with torch's cascade summation; a batched matrix product (bmm) accumulates
    # half a million float32 terms with a relative error of 2e-4 (and is slow for batch > 1).
    var = torch.linalg.vecdot(flat, flat).unsqueeze(1) / flat.shape[1]
    return flat.view(y.shape), var


def gln(
    norm: nn.GroupNorm,
    y: torch.Tensor,
    overwrite: bool = False,
    sigmoid: bool = False,
    fused: bool = False,
) -> torch.Tensor:
    """gLN (one-group ``GroupNorm``) of time-major ``y`` ``(B, T, C)``, same shape.

    Args:
        norm: The gLN module (its gain, bias and epsilon are used).
        y: ``(B, T, C)``.
        overwrite: In inference, write the result over ``y`` (its caller no longer needs it).
        sigmoid: Return the logistic sigmoid of the result instead (fused where possible).
        fused: The fused kernels serve this forward pass (:func:`kernels_fit`).
    """
    if not y.is_contiguous():
        y, overwrite = y.contiguous(), True  # a copy of our own
    if fused:
        out = y if overwrite else torch.empty_like(y)
        flags = native.SIGMOID if sigmoid else 0
        return native.trusted_gln(y, norm.weight, norm.bias, norm.eps, out, flags)
    d, var = centered(y, overwrite)
    a = norm.weight * torch.rsqrt(var + norm.eps)  # (B, C)
    # In inference the centred tensor is ours (a fresh one, or y itself if overwritten).
    out = {"out": d} if _in_place() else {}
    y = torch.addcmul(norm.bias, d, a.unsqueeze(1), **out)
    return torch.sigmoid(y) if sigmoid else y


def _fused_depthwise_gln(
    conv: nn.Conv1d, norm: nn.GroupNorm, x: torch.Tensor, flags: int = 0, **options
) -> torch.Tensor:
    """``native.trusted_gln`` (with ``flags`` and ``options``: gate, value and source, or
    out_moments) of ``depthwise(x, conv)``, written over the convolution's output; the fused
    convolution hands over its output's statistics, so the gLN makes one pass. For passes the
    fused kernels serve (:func:`kernels_fit`)."""
    args = (conv.weight, conv.bias, conv.stride[0], conv.padding[0])
    y, moments = native.trusted_depthwise(x.contiguous(), *args, moments=True)
    return native.trusted_gln(
        y, norm.weight, norm.bias, norm.eps, y, flags, moments=moments, **options
    )


def depthwise_gln(
    conv: nn.Conv1d,
    norm: nn.GroupNorm,
    x: torch.Tensor,
    sigmoid: bool = False,
    fused: bool = False,
) -> torch.Tensor:
    """``gln(norm, depthwise(x, conv))`` (or its sigmoid) of time-major ``x`` ``(B, T, C)``."""
    if fused:
        return _fused_depthwise_gln(conv, norm, x, native.SIGMOID if sigmoid else 0)
    return gln(norm, depthwise(x, conv), overwrite=True, sigmoid=sigmoid)


def conv_gln_prelu(layer: ConvNormAct, x: torch.Tensor, fused: bool = False) -> torch.Tensor:
    """A kernel-1 :class:`~asteroid_tdanet.layers.ConvNormAct`, ``act(gLN(conv(x)))``, on
    time-major ``x`` ``(B, T, C_in)`` -> ``(B, T, C_out)``.

    Fused, the gLN and PReLU are one call, and the convolution's bias is added inside it
    (gLN's statistics of ``y + b`` follow from those of ``y``), not by the matrix product.
    """
    conv, norm, act = layer.conv, layer.norm, layer.act
    if fused and act.weight.numel() == 1:
        return _fused_gln_prelu(layer, linear(x, conv.weight.squeeze(-1)))
    return prelu(act, gln(norm, pointwise(x, conv), overwrite=True, fused=fused))


def _fused_gln_prelu(layer: ConvNormAct, y: torch.Tensor) -> torch.Tensor:
    """``act(gLN(y + conv.bias))`` of a :class:`~asteroid_tdanet.layers.ConvNormAct` with a
    single-slope PReLU, ``y`` its convolution's product without the bias, written over ``y``."""
    norm, act = layer.norm, layer.act
    args = (norm.weight, norm.bias, norm.eps, y, native.PRELU, float(act.weight))
    return native.trusted_gln(y, *args, pre_bias=layer.conv.bias)


def gln_affine(
    mean: torch.Tensor,
    var: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel affine ``(a, c)`` with ``gLN(y) = a * y + c``, from ``y``'s statistics.

    gLN normalises with the mean ``mu`` and variance ``sigma^2`` over channels and time; from the
    per-channel means ``m`` and (population) variances ``v`` over time, ``mu = mean(m)`` and
    ``sigma^2 = mean(v) + mean((m - mu)^2)`` (law of total variance, equal frame counts).

    Args:
        mean: Per-channel means over time, ``(B, C)``.
        var: Per-channel population variances over time, ``(B, C)``.
        gamma: gLN gain ``(C,)``.
        beta: gLN bias ``(C,)``.
        eps: gLN epsilon (added to the variance).

    Returns:
        ``(a, c)``, each ``(B, C)``.
    """
    mu = mean.mean(-1, keepdim=True)
    total = var.mean(-1, keepdim=True) + (mean - mu).square().mean(-1, keepdim=True)
    a = gamma * torch.rsqrt(total + eps)
    return a, beta - a * mu


def channel_stats(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population variance over time of ``(B, T, C)``: two ``(B, C)``.

    Two passes, the mean and then the sum of squared deviations, both vectorised over channels
    (``torch.var_mean`` over the time axis of this layout takes a slow strided reduction, about
    2 ms for 512 x 1000 frames; the one-pass ``E[y^2] - E[y]^2`` cancels digits away).
    """
    mean = y.mean(1)
    d = y - mean.unsqueeze(1)
    d = d.square_() if _in_place() else d.square()
    return mean, d.mean(1)


def global_affine(
    norm: nn.GroupNorm, y: torch.Tensor, overwrite: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``y`` centred, and the per-channel affine ``(a, c)`` with ``gLN(y) = a * centred + c``.

    Args:
        norm: The gLN module.
        y: ``(B, T, C)``.
        overwrite: In inference, centre ``y`` in place.

    Returns:
        The centred ``(B, T, C)``, then ``a`` and ``c``, each ``(B, C)``.
    """
    d, var = centered(y, overwrite)
    a = norm.weight * torch.rsqrt(var + norm.eps)
    return d, a, norm.bias.expand_as(a)


@lru_cache(maxsize=512)
def _nearest_index(src: int, dst: int, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """Torch's own nearest-resize source indices from ``src`` to ``dst`` frames, for ``dtype``.

    ``None`` when they are ``t // 2`` (an exact halving, served by a broadcast view). Taken from
    ``F.interpolate`` itself on data of the same dtype, because torch computes the scale in the
    data's precision: float32 and float64 pick different frames for long inputs (e.g. 11 of
    60001 frames from 7501).
    """
    # A normal tensor even when first built under inference mode, so autograd may use it later.
    with torch.inference_mode(False), torch.no_grad():
        # Frame numbers are exact in float32 up to 2**24 frames.
        positions = torch.arange(src, dtype=dtype).view(1, 1, src)
        index = F.interpolate(positions, size=dst, mode="nearest").view(dst).long()
        if src == (dst + 1) // 2 and torch.equal(index, torch.arange(dst) // 2):
            return None
        return index


@lru_cache(maxsize=512)
def _frames_index(src: int, dst: int) -> torch.Tensor:
    """For each of ``dst`` frames, the frame of ``src`` that torch's nearest resize takes."""
    with torch.inference_mode(False), torch.no_grad():
        if src == dst:
            return torch.arange(dst)
        if src == 1:
            return torch.zeros(dst, dtype=torch.long)
        index = _nearest_index(src, dst)
        return torch.arange(dst) // 2 if index is None else index


def affine_up(
    y: torch.Tensor, p: torch.Tensor, q: torch.Tensor, overwrite: bool = False
) -> torch.Tensor:
    """``y * up(p) + up(q)`` along time, ``up`` being torch's nearest resize to ``y``'s length.

    Args:
        y: ``(B, T, C)``, contiguous if ``overwrite``.
        p: ``(B, T', C)``.
        q: ``(B, T', C)``.
        overwrite: Write the result into ``y`` (its caller no longer needs it): in inference
            this saves a fresh activation.

    Returns:
        ``(B, T, C)`` (``y`` itself if ``overwrite``).
    """
    length, src = y.shape[1], p.shape[1]
    out = {"out": y} if overwrite else {}
    if src == length:
        return torch.addcmul(q, y, p, **out)
    index = _nearest_index(src, length, y.dtype)
    if index is not None:
        both = torch.stack([p, q], 2).index_select(1, index.to(y.device))
        return torch.addcmul(both[:, :, 1], y, both[:, :, 0], **out)
    # Exact halving: frame pairs (2j, 2j + 1) share p[j], q[j].
    even = length - length % 2
    pairs = y[:, :even].unflatten(1, (even // 2, 2))
    half = even // 2
    if overwrite:
        torch.addcmul(q[:, :half, None], pairs, p[:, :half, None], out=pairs)
        if length % 2:
            torch.addcmul(q[:, -1:], y[:, -1:], p[:, -1:], out=y[:, -1:])
        return y
    body = torch.addcmul(q[:, :half, None], pairs, p[:, :half, None]).flatten(1, 2)
    if length % 2 == 0:
        return body
    last = torch.addcmul(q[:, -1:], y[:, -1:], p[:, -1:])
    return torch.cat([body, last], 1)


def _gate_value(
    la: LocalAttention, x_global: torch.Tensor, fused: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sigmoid(gate(x_g))`` and ``value(x_g)`` of time-major ``x_g`` ``(B, T', C)``."""
    out = []
    for branch in (la.gate, la.value):
        conv, norm = branch.conv, branch.norm
        sigmoid = branch is la.gate
        if isinstance(conv, torch.nn.Conv1d):
            out.append(depthwise_gln(conv, norm, x_global, sigmoid=sigmoid, fused=fused))
            continue
        if fused:
            x_global = x_global.contiguous()
            out.append(
                native.trusted_gln(
                    x_global,
                    norm.weight,
                    norm.bias,
                    norm.eps,
                    torch.empty_like(x_global),
                    native.SIGMOID if sigmoid else 0,
                    pre_scale=conv.weight.view(-1),
                    pre_bias=conv.bias,
                )
            )
            continue
        y = x_global * conv.weight.view(-1)  # kernel 1 (DepthwiseScale, no bias in LA)
        out.append(gln(branch.norm, y, overwrite=True, sigmoid=branch is la.gate))
    return out[0], out[1]


def local_attention(
    la: LocalAttention,
    x_local: torch.Tensor,
    x_global: torch.Tensor | None,
    gate_value: tuple[torch.Tensor, torch.Tensor] | None = None,
    overwrite: bool = False,
    fused: bool = False,
    moments: torch.Tensor | None = None,
) -> torch.Tensor:
    """:class:`~asteroid_tdanet.layers.LocalAttention` on time-major tensors, in one full pass.

    ``LA = local(x) * up(g) + up(v) = y * up(a g) + up(c g + v)``, where ``local(x) = a y + c`` is
    the local branch's gLN written as a per-channel affine of ``y`` (the convolution's output).

    Args:
        la: The local attention layer (its parameters are used).
        x_local: ``(B, T, C)``.
        x_global: ``(B, T', C)``; unused when ``gate_value`` is given.
        gate_value: ``sigmoid(gate(x_global))`` and ``value(x_global)`` if already computed.
        overwrite: In inference, the result may be written over ``x_local`` (kernel-1 local
            branch) or over the local convolution's output.
        fused: The fused kernels serve this forward pass (:func:`kernels_fit`).
        moments: Fused, ``x_local``'s per-channel means and variances if known (see
            ``native.trusted_gln``), for a kernel-1 local branch: it then reads ``x_local`` once.

    Returns:
        ``(B, T, C)``.
    """
    conv, norm = la.local.conv, la.local.norm
    if fused:
        # LA = gLN(y) up(g) + up(v) in one call after the convolution (none for kernel 1).
        gate, value = _gate_value(la, x_global, True) if gate_value is None else gate_value
        source = _frames_index(gate.shape[1], x_local.shape[1])
        gated = {"gate": gate.contiguous(), "value": value.contiguous(), "source": source}
        if isinstance(conv, torch.nn.Conv1d):
            return _fused_depthwise_gln(conv, norm, x_local, native.GATE, **gated)
        mine = overwrite and x_local.is_contiguous()
        x_local = x_local.contiguous()
        return native.trusted_gln(
            x_local,
            norm.weight,
            norm.bias,
            norm.eps,
            x_local if mine else torch.empty_like(x_local),
            native.GATE,
            pre_scale=conv.weight.view(-1),
            pre_bias=conv.bias,
            moments=moments,
            **gated,
        )
    if isinstance(conv, torch.nn.Conv1d):
        # The convolution's output is ours: centred in place in inference.
        y, a, c = global_affine(norm, depthwise(x_local, conv), overwrite=True)
    else:
        # Kernel 1: local(x) = gLN(w * x + b), whose per-channel statistics are those of x scaled.
        y = x_local
        w = conv.weight.view(-1)
        b = conv.bias if conv.bias is not None else torch.zeros_like(w)
        mean, var = channel_stats(y)
        a, c = gln_affine(w * mean + b, w.square() * var, norm.weight, norm.bias, norm.eps)
        a, c = a * w, torch.addcmul(c, a, b)
    gate, value = _gate_value(la, x_global) if gate_value is None else gate_value
    p = a.unsqueeze(1) * gate
    q = torch.addcmul(value, c.unsqueeze(1), gate)
    # y is the convolution's output (ours to overwrite), or x_local when the caller allows it.
    mine = y is not x_local or overwrite
    return affine_up(y, p, q, overwrite=mine and _in_place() and y.is_contiguous())


def inject_gates(
    layers: list[LocalAttention], x_global: torch.Tensor, fused: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Every kernel-1 local attention's ``sigmoid(gate(x_g))`` and ``value(x_g)``, together.

    All of a U-block's injection layers read the same global features, and a kernel-1 gate or
    value is ``gLN(w * x_g)``, whose statistics follow from ``x_g``'s per-channel ones; so one
    pass over ``x_g`` for statistics and one multiply-add serve every layer.

    Args:
        layers: The injection layers (kernel 1, no bias).
        x_global: ``(B, T', C)``.

    Returns:
        One ``(gate, value)`` pair per layer, each ``(B, T', C)``; ``None`` if the layers do not
        all have that form (then each computes its own), or where ``fused``.
    """
    if fused:
        return None  # each layer's gate and value is one fused call, from x_g directly
    branches = [branch for la in layers for branch in (la.gate, la.value)]
    eps = {branch.norm.eps for branch in branches}
    if len(eps) != 1 or any(
        isinstance(b.conv, torch.nn.Conv1d) or b.conv.bias is not None for b in branches
    ):
        return None
    w = torch.stack([b.conv.weight.view(-1) for b in branches])  # (2L, C)
    gamma = torch.stack([b.norm.weight for b in branches])
    beta = torch.stack([b.norm.bias for b in branches])
    mean, var = channel_stats(x_global)  # (B, C)
    a, c = gln_affine(w * mean[:, None], w.square() * var[:, None], gamma, beta, eps.pop())
    # (B, 2L, T', C): gLN(w * x_g) = (a w) x_g + c for every branch at once.
    out = torch.addcmul(c.unsqueeze(2), x_global.unsqueeze(1), (a * w).unsqueeze(2))
    gates = torch.sigmoid(out[:, 0::2])
    return [(gates[:, i], out[:, 2 * i + 1]) for i in range(len(layers))]


@lru_cache(maxsize=64)
def _positions(
    length: int, channels: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The sinusoidal table, built once per length instead of once per block application."""
    # A normal tensor even when first built under inference mode, so autograd may use it later.
    with torch.inference_mode(False), torch.no_grad():
        return sinusoidal_positions(length, channels, device, dtype)


def global_attention(ga: GlobalAttention, x: torch.Tensor, fused: bool = False) -> torch.Tensor:
    """:class:`~asteroid_tdanet.layers.GlobalAttention` on time-major ``x`` ``(B, T, N)``.

    In training mode the module itself runs (on a transposed view), so its dropout and drop-path
    draw exactly the random numbers of the plain path; at the coarsest scale that costs little.
    """
    if ga.training:
        return ga(x.mT).mT
    mhsa, ffn = ga.mhsa, ga.ffn
    y = mhsa.in_norm(x) + _positions(x.shape[1], x.shape[2], x.device, x.dtype)
    y = mhsa._per_frame(y) if mhsa.legacy_look2hear else mhsa._over_time(y)
    x = x + mhsa.out_norm(y + y)  # eval: dropout and drop-path are identities
    h = gln(ffn.fc1.norm, pointwise(x, ffn.fc1.conv), overwrite=True, fused=fused)
    h = torch.relu(depthwise(h, ffn.dwconv, fused))
    return x + gln(ffn.fc2.norm, pointwise(h, ffn.fc2.conv), overwrite=True, fused=fused)


def pooled_sum(scales: list[torch.Tensor], fused: bool = False) -> torch.Tensor:
    """The coarsest scale plus each finer one average-pooled to its length, ``(B, T', C)``."""
    coarsest = scales[-1]
    if fused:
        coarsest = coarsest.contiguous()
        pooled = native.trusted_copy(coarsest, torch.empty_like(coarsest))
        for scale in scales[:-1]:
            native.trusted_pool_add(scale.contiguous(), pooled)
        return pooled
    pooled = coarsest
    for scale in scales[:-1]:
        size = (1, coarsest.shape[1])
        pooled = pooled + _from_image(F.adaptive_avg_pool2d(_as_image(scale), size))
    return pooled


def ublock_forward(
    block: UBlock, x: torch.Tensor, fused: bool | None = None, plans: dict | None = None
) -> torch.Tensor:
    """:class:`~asteroid_tdanet.masker.UBlock`'s forward on time-major ``x``.

    Args:
        block: The U-block (its parameters and mode are used).
        x: ``(B, T, C)``.
        fused: Whether the fused kernels serve this pass; ``None``: :func:`kernels_fit` decides.
        plans: Where the fused kernels' recorded calls are kept for later applications of the
            block within the same forward pass (its weights unchanged); ``None``: not kept.

    Returns:
        ``(B, T, C)``, equal to ``block(x.mT).mT`` up to float rounding.
    """
    if fused is None:
        fused = kernels_fit(block, x)
    if fused and _programs.enabled and block.proj_in.act.weight.numel() == 1:
        return _recorded_ublock(block, x, {} if plans is None else plans)
    scales, moments = _down_path(block, conv_gln_prelu(block.proj_in, x, fused), fused)
    glob = global_attention(block.global_attn, pooled_sum(scales, fused), fused)
    return x + pointwise(_top_down(block, scales, moments, glob, fused), block.proj_out)


def _down_path(
    block: UBlock, current: torch.Tensor, fused: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """The U-block's scales from its projected input ``(B, T, C)``, finest first, and where
    ``fused`` each one's per-channel moments (``(2, B, C)``, for its injection), else Nones."""
    scales, moments = [], []
    for down in block.down:
        stats = None
        if fused:  # a plain gLN's output: its statistics come with it, for its injection
            stats = torch.empty(2, current.shape[0], current.shape[2], dtype=torch.float64)
            current = _fused_depthwise_gln(down.conv, down.norm, current, out_moments=stats)
        else:
            current = depthwise_gln(down.conv, down.norm, current)
        scales.append(current)
        moments.append(stats)
    return scales, moments


def _top_down(
    block: UBlock,
    scales: list[torch.Tensor],
    moments: list[torch.Tensor | None],
    glob: torch.Tensor,
    fused: bool,
) -> torch.Tensor:
    """The U-block's injections of the global features ``glob`` into its ``scales`` and their
    fusion from the coarsest up: ``(B, T, C)``, before the output projection."""
    top = block.depth - 2
    # As in UBlock.forward: in legacy mode the coarsest scale's injection is never used.
    needed = sorted({i for i in range(block.depth - 1)} | {block.top_source})
    gates = inject_gates([block.inject[i] for i in needed], glob, fused)
    # Each scale is read for the last time here, so its injection may overwrite it.
    merged = {
        i: local_attention(
            block.inject[i],
            scales[i],
            glob,
            gate_value=None if gates is None else gates[k],
            overwrite=True,
            fused=fused,
            moments=moments[i],
        )
        for k, i in enumerate(needed)
    }
    y = local_attention(block.fuse[top], merged[top], merged[block.top_source], fused=fused)
    for i in range(top - 1, -1, -1):
        y = local_attention(block.fuse[i], merged[i], y, fused=fused)
    return y


class _Recorded:
    """A U-block's fused-kernel calls for one input shape: those before the global attention
    (``down``, writing ``pooled``, its input) and those after it (``up``, writing ``out``)."""

    def __init__(self, down: programs.Program, pooled: torch.Tensor, scales, moments) -> None:
        self.down, self.pooled = down, pooled
        self.scales, self.moments = scales, moments  # until ``up`` is recorded
        self.up: programs.Program | None = None
        self.out: torch.Tensor | None = None


def _recorded_ublock(block: UBlock, x: torch.Tensor, plans: dict) -> torch.Tensor:
    """:func:`ublock_forward` with the fused kernels, their calls recorded at the block's first
    application with this shape (kept in ``plans``) and run from the recording after that."""
    layer = block.proj_in
    y = linear(x, layer.conv.weight.squeeze(-1))  # the projection, its bias added by the gLN
    key = (id(block), tuple(x.shape), torch.get_num_threads())
    plan = plans.get(key)
    if plan is None:
        with programs.recording(y) as recorder:
            scales, moments = _down_path(block, _fused_gln_prelu(layer, y), True)
            pooled = pooled_sum(scales, True)
        plan = plans[key] = _Recorded(programs.Program(recorder), pooled, scales, moments)
    plan.down.run(y)
    glob = global_attention(block.global_attn, plan.pooled, True).contiguous()
    if plan.up is None:
        with programs.recording(glob, after=plan.down) as recorder:
            plan.out = _top_down(block, plan.scales, plan.moments, glob, True)
        plan.up, plan.scales, plan.moments = programs.Program(recorder), None, None
    plan.up.run(glob)
    return x + pointwise(plan.out, block.proj_out)


def masker_forward(masker: TDANetMasker, tf_rep: torch.Tensor) -> torch.Tensor:
    """:class:`~asteroid_tdanet.masker.TDANetMasker`'s forward, time-major inside.

    Args:
        masker: The masker (its parameters, mode and ``checkpoint_blocks`` are used).
        tf_rep: Encoder features ``(B, in_chan, frames)``.

    Returns:
        Masks ``(B, n_src, in_chan, frames)``.
    """
    from torch.utils.checkpoint import checkpoint

    fused = kernels_fit(masker, tf_rep)
    plans: dict = {}  # the U-block's recorded kernel calls, for this pass only

    def block(x: torch.Tensor) -> torch.Tensor:
        if masker.checkpoint_blocks and masker.training and torch.is_grad_enabled():
            return checkpoint(ublock_forward, masker.ublock, x, fused, use_reentrant=False)
        return ublock_forward(masker.ublock, x, fused, plans)

    if fused:
        native.tune_grain()
    # One pass: weights kept in other layouts are checked against the weights once, here.
    with forward_pass():
        x0 = pointwise(gln(masker.in_norm, tf_rep.mT, fused=fused), masker.bottleneck)
        scale, act_in = masker.recur_in
        x = block(x0)
        for _ in range(masker.n_blocks - 1):
            x = block(prelu(act_in, torch.addcmul(scale.bias, x0 + x, scale.weight.view(-1))))
        act, conv = masker.mask_net
        masks = torch.relu(pointwise(prelu(act, x), conv)).mT
    return masks.reshape(masks.shape[0], masker.n_src, masker.in_chan, masks.shape[-1])
