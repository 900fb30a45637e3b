"""Which CPU kernel runs the separator's matrix products.

TDANet's multiply-adds are almost all 1x1 convolutions and attention projections, i.e. matrix
products. For float32 on the CPU, ``F.linear`` calls MKL's sgemm, which on the AMD EPYC of our
CI machine runs at about 57 GMAC/s on one core, while oneDNN's matmul (the kernel behind
``torch.ops.mkldnn._linear_pointwise``, which inductor uses for CPU linears) reaches about
125 GMAC/s on the same shapes: MKL does not use the AVX-512 units of AMD processors. Elsewhere
MKL is as fast or faster, and which one wins can depend on the shape: on an Intel Xeon limited to
AVX2, oneDNN is as fast on TDANet's fine-scale projections and 12-17% slower on the coarsest
scale's feed-forward products. A probe timed on one shape in warm caches picked the wrong kernel
there, so the choice is measured in the model's own calls: for each product shape (weight shape,
number of rows within a power of two, thread count) the first inference-time calls alternate
between the two kernels, timed, and from then on the faster one serves that shape for the life of
the process (:func:`chosen_kernels` lists the choices). MKL is kept unless oneDNN is clearly
faster: training always runs ``F.linear``, so inference then computes the same rounding.

oneDNN's op has no autograd formula, so it is used only when no gradient is needed; it accepts
float32 only. ``TDANET_ONEDNN_LINEAR=0``, ``set_onednn_linear(False)`` or the
``onednn_linear(False)`` context manager switch it off.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from functools import lru_cache
from statistics import median

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from .switch import Switch

__all__ = [
    "chosen_kernels",
    "linear",
    "onednn_linear",
    "onednn_linear_available",
    "onednn_linear_enabled",
    "set_onednn_linear",
]

_switch = Switch("TDANET_ONEDNN_LINEAR")
_PLAIN = (torch.Tensor, torch.nn.Parameter)

# Per product shape: untimed calls of each kernel (oneDNN builds its primitive at the first),
# then timed calls of each, alternating, before the choice. TDANet makes 16 calls of each shape
# per forward pass, so the timed calls fall mostly in the second pass: the first one's calls also
# pay for fresh memory and cold caches, and with only those a run of processes picked oneDNN for
# one shape or another at random.
WARMUP_CALLS = 4
TIMED_CALLS = 12
# oneDNN is chosen only if its median time is at most this share of MKL's: smaller differences
# are within what one process's few calls can tell apart.
MARGIN = 0.97

# (rows' bit length, in_features, out_features, threads) -> oneDNN chosen (True) or MKL.
Key = tuple[int, int, int, int]
_chosen: dict[Key, bool] = {}
# Shapes being measured: the seconds of each call so far, oneDNN's then MKL's.
_trials: dict[Key, tuple[list[float], list[float]]] = {}
_lock = threading.Lock()


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
    """Hide the availability check below from active dispatch modes (FlopCounterMode,
    profilers' modes): it may run inside the first forward pass of a process, whose MAC count
    must not include its product."""
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


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _mkl(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x, weight, bias)


def _product(
    onednn: bool, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    return _onednn(x, weight, bias) if onednn else _mkl(x, weight, bias)


def onednn_faster(onednn_s: list[float], mkl_s: list[float], margin: float = MARGIN) -> bool:
    """The choice from timed calls: oneDNN if its median is at most ``margin`` of MKL's."""
    if not onednn_s or not mkl_s:
        raise ValueError("onednn_faster: needs timed calls of both kernels")
    return median(onednn_s) <= margin * median(mkl_s)


def _measured(key: Key, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """One call of a shape still being measured: the kernel with fewer calls so far, timed.

    The bookkeeping is under a lock (Python threads may share a model); the product is not,
    so products of threads running at once may be timed while competing for the cores.
    """
    with _lock:
        onednn = _chosen.get(key)
        if onednn is None:  # (another thread may have decided since the caller looked)
            onednn_s, mkl_s = _trials.setdefault(key, ([], []))
            use_onednn = len(onednn_s) <= len(mkl_s)
    if onednn is not None:
        return _product(onednn, x, weight, bias)
    start = time.perf_counter()
    out = _product(use_onednn, x, weight, bias)
    elapsed = time.perf_counter() - start
    with _lock:
        if key in _trials:
            (onednn_s if use_onednn else mkl_s).append(elapsed)
            if min(len(onednn_s), len(mkl_s)) >= WARMUP_CALLS + TIMED_CALLS:
                _chosen[key] = onednn_faster(onednn_s[WARMUP_CALLS:], mkl_s[WARMUP_CALLS:])
                del _trials[key]
    return out


def chosen_kernels() -> dict[str, str]:
    """The kernel chosen for each product shape measured so far in this process.

    Returns:
        ``{"<in>x<out>, <lo>-<hi> rows, <n> threads": "onednn" or "mkl"}``.
    """
    out = {}
    for (bits, inner, cols, threads), onednn in sorted(_chosen.items()):
        rows = f"{1 << (bits - 1)}-{(1 << bits) - 1}" if bits else "0"
        out[f"{inner}x{cols}, {rows} rows, {threads} threads"] = "onednn" if onednn else "mkl"
    return out


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN when nothing needs a gradient and, for this
    shape on this CPU, it was measured faster (see the module's description).

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
        needs_grad
        or x.device.type != "cpu"
        or not x.dtype == weight.dtype == torch.float32
        or x.dim() == 0
        or weight.dim() != 2  # (F.linear also takes a vector; it raises the errors for others)
        or x.shape[-1] != weight.shape[1]  # (then F.linear raises its error)
        or weight.shape[1] == 0  # (oneDNN refuses an empty inner dimension)
        or torch.is_autocast_enabled("cpu")  # (oneDNN's op would ignore it)
        # Fake tensors, tensor subclasses and dispatch modes (FlopCounterMode, fake-tensor
        # tracing) get the standard op: timing them would choose from what is not a product.
        or type(x) not in _PLAIN
        or is_in_torch_dispatch_mode()
        # Repeated calls must give the same bits: no alternation while a shape is measured.
        or torch.are_deterministic_algorithms_enabled()
        or not _switch.enabled
        # Compilers and exporters get the standard op, which they know how to lower.
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.jit.is_tracing()
        or not onednn_linear_available()
    ):
        return F.linear(x, weight, bias)
    rows = x.numel() // x.shape[-1]
    key = (rows.bit_length(), weight.shape[1], weight.shape[0], torch.get_num_threads())
    onednn = _chosen.get(key)
    if onednn is None:
        return _measured(key, x, weight, bias)
    return _product(onednn, x, weight, bias)
