"""Which CPU kernel runs the separator's matrix products.

TDANet's multiply-adds are almost all 1x1 convolutions and attention projections, i.e. matrix
products. For float32 on the CPU, ``F.linear`` calls MKL's sgemm, which on the AMD EPYC of our
CI machine runs at about 57 GMAC/s on one core, while oneDNN's matmul (the kernel behind
``torch.ops.mkldnn._linear_pointwise``, which inductor uses for CPU linears) reaches about
125 GMAC/s on the same shapes: MKL does not use the AVX-512 units of AMD processors.
:func:`linear` sends inference-time products to oneDNN and everything else to ``F.linear``.

oneDNN's op has no autograd formula, so it is used only when no gradient is needed; it accepts
float32 only. ``TDANET_ONEDNN_LINEAR=0``, ``set_onednn_linear(False)`` or the
``onednn_linear(False)`` context manager switch it off.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache

import torch
import torch.nn.functional as F

from .switch import Switch

__all__ = [
    "linear",
    "onednn_linear",
    "onednn_linear_available",
    "onednn_linear_enabled",
    "set_onednn_linear",
]

_switch = Switch("TDANET_ONEDNN_LINEAR")


def onednn_linear_enabled() -> bool:
    """Whether inference-time matrix products may go to oneDNN (switched on by default)."""
    return _switch.enabled


def set_onednn_linear(enabled: bool) -> None:
    """Send inference-time matrix products to oneDNN (``True``, the default) or to ``F.linear``."""
    _switch.set(enabled)


def onednn_linear(enabled: bool) -> AbstractContextManager[None]:
    """Run the block with oneDNN's matmul switched on or off, then restore the previous setting."""
    return _switch.scoped(enabled)


@lru_cache(maxsize=1)
def onednn_linear_available() -> bool:
    """Whether this torch build has oneDNN's float32 matmul and it agrees with ``F.linear``."""
    if not torch.backends.mkldnn.is_available():
        return False
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if op is None:
        return False
    generator = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=generator) for shape in ((3, 5, 8), (4, 8), (4,)))
    try:
        with torch.no_grad():
            out = op(x, w, b, "none", [], "")
    except RuntimeError:  # a build without the fused op's kernels
        return False
    return out.shape == (3, 5, 4) and torch.allclose(out, F.linear(x, w, b), atol=1e-5)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN when nothing needs a gradient.

    Args:
        x: ``(..., in_features)``.
        weight: ``(out_features, in_features)``.
        bias: ``(out_features,)`` or ``None``.

    Returns:
        ``(..., out_features)``.
    """
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    if (
        not needs_grad
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and _switch.enabled
        and onednn_linear_available()
        # Compilers and exporters get the standard op, which they know how to lower.
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and not torch.jit.is_tracing()
    ):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)
