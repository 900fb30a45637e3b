"""Which CPU kernel runs the separator's matrix products.

TDANet's multiply-adds are almost all 1x1 convolutions and attention projections, i.e. matrix
products. For float32 on the CPU, ``F.linear`` calls MKL's sgemm, which on the AMD EPYC of our
CI machine runs at about 57 GMAC/s on one core, while oneDNN's matmul (the kernel behind
``torch.ops.mkldnn._linear_pointwise``, which inductor uses for CPU linears) reaches about
125 GMAC/s on the same shapes: MKL does not use the AVX-512 units of AMD processors. On an
AVX2-only CPU the two run at about the same rate. So the choice is measured, not assumed: at
first use, :func:`onednn_linear_faster` times both on TDANet's projection shape and
:func:`linear` sends inference-time products to the faster one (everything else to
``F.linear``); the answer is kept for the life of the process.

oneDNN's op has no autograd formula, so it is used only when no gradient is needed; it accepts
float32 only. ``TDANET_ONEDNN_LINEAR=0``, ``set_onednn_linear(False)`` or the
``onednn_linear(False)`` context manager switch it off.
"""

from __future__ import annotations

import time
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
    "onednn_linear_faster",
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


def _unobserved() -> AbstractContextManager[object]:
    """Hide the probes below from active dispatch modes (FlopCounterMode, profilers' modes).

    They run inside whatever the first model call runs in: a MAC count of the first forward
    pass of a process would otherwise include the probes' products.
    """
    from torch.utils._python_dispatch import _disable_current_modes

    return _disable_current_modes()


@lru_cache(maxsize=1)
def onednn_linear_available() -> bool:
    """Whether this torch build has oneDNN's float32 matmul and it agrees with ``F.linear``."""
    with _unobserved():
        return _onednn_linear_works()


def _onednn_linear_works() -> bool:
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


# TDANet's U-block projection at 1 s of 8 kHz audio (frames x in -> out), the commonest product.
_PROBE_SHAPE = (1010, 128, 512)
_PROBE_ROUNDS = 7


@lru_cache(maxsize=1)
def onednn_linear_faster() -> bool:
    """Whether oneDNN's matmul beats ``F.linear`` on this CPU, measured once per process.

    Both run interleaved, ``_PROBE_ROUNDS`` times each after a warm-up, on TDANet's projection
    shape with the current thread count (about 20 ms in all); the lower median wins. False where
    oneDNN's matmul is not available.
    """
    if not onednn_linear_available():
        return False
    with _unobserved():
        return _time_both_kernels()


def _time_both_kernels() -> bool:
    rows, inner, cols = _PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, inner, generator=generator)
    w = torch.randn(cols, inner, generator=generator)
    b = torch.randn(cols, generator=generator)
    runs = {
        "onednn": lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""),
        "mkl": lambda: F.linear(x, w, b),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for round_ in range(_PROBE_ROUNDS + 1):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                if round_:  # the first round warms both up
                    times[name].append(time.perf_counter() - start)
    median = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
    return median["onednn"] < median["mkl"]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN when nothing needs a gradient and it is faster.

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
        # Compilers and exporters get the standard op, which they know how to lower.
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and not torch.jit.is_tracing()
        and onednn_linear_faster()
    ):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)
