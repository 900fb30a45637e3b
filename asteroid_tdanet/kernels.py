"""Which CPU kernel runs the separator's matrix products.

TDANet's multiply-adds are almost all 1x1 convolutions and attention projections, i.e. matrix
products. For float32 on the CPU, ``F.linear`` calls MKL's sgemm, which on the AMD EPYC of our
CI machine runs at about 57 GMAC/s on one core, while oneDNN's matmul (the kernel behind
``torch.ops.mkldnn._linear_pointwise``, which inductor uses for CPU linears) reaches about
125 GMAC/s on the same shapes: MKL does not use the AVX-512 units of AMD processors. Elsewhere
MKL is as fast or faster, and which one wins can depend on the shape: on an Intel Xeon limited to
AVX2, oneDNN is as fast on TDANet's fine-scale projections and 12-17% slower on the coarsest
scale's feed-forward products. MKL itself is faster on an Intel Xeon's AVX-512 units when the
weight is stored transposed, ``(in_features, out_features)`` row-major (``torch.addmm`` with a
contiguous copy): 13-22% on TDANet's 64-row products, 2-7% on its 1000-row ones; limited to AVX2
it makes no difference. A probe timed on one shape in warm caches picked the wrong kernel, so the
choice is measured in the model's own calls: for each product shape (weight shape, number of rows
within a power of two, thread count) the first inference-time calls cycle through the kernels,
timed, and from then on the fastest serves that shape for the life of the process
(:func:`chosen_kernels` lists the choices). ``F.linear`` is kept unless another kernel is
clearly faster: training always runs it, so inference then computes the same rounding.

The transposed copies are kept per weight within a forward pass of the separator's fast path and
checked against their weights once per pass (:mod:`~asteroid_tdanet.derived`); outside a pass
that kernel is ``F.linear``, and shapes not yet measured are not measured there. oneDNN's op has
no autograd formula; like the copies, it is used only when no gradient is needed, for float32
only. ``TDANET_ONEDNN_LINEAR=0``, ``set_onednn_linear(False)`` or the ``onednn_linear(False)``
context manager send every product to ``F.linear``.
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

from .derived import Derived, in_forward_pass
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

# The kernels a product may run on: F.linear (MKL), MKL with the weight transposed, oneDNN.
MKL, MKL_TRANSPOSED, ONEDNN = "mkl", "mkl_transposed", "onednn"
# Per product shape: untimed calls of each kernel (oneDNN builds its primitive at the first),
# then timed calls of each, in turn, before the choice. TDANet makes 16 calls of each U-block
# shape per forward pass, so the 48 calls span its first three passes: the first pass's calls
# also pay for fresh memory and cold caches, and timed on those alone the pick varied between
# processes. (The input and mask projections, once per pass, settle later: a small share.)
WARMUP_CALLS = 4
TIMED_CALLS = 12
# Another kernel replaces F.linear only if its median time is at most this share of F.linear's:
# smaller differences are within what one process's few calls can tell apart.
MARGIN = 0.97

# (rows' bit length, in_features, out_features, threads) -> the kernel chosen.
Key = tuple[int, int, int, int]
_chosen: dict[Key, str] = {}
# Shapes being measured: the seconds of each kernel's calls so far.
_trials: dict[Key, dict[str, list[float]]] = {}
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


# A weight as (in_features, out_features), contiguous: MKL's faster layout on AVX-512.
_TRANSPOSED = Derived(lambda weight: weight.t().contiguous())


def _mkl_transposed(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    transposed = _TRANSPOSED.kept(weight)
    if transposed is None:  # outside a forward pass: no kept copy to use
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1])
    out = torch.mm(rows, transposed) if bias is None else torch.addmm(bias, rows, transposed)
    return out.view(*x.shape[:-1], transposed.shape[1])


def _product(
    kernel: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    if kernel == ONEDNN:
        return _onednn(x, weight, bias)
    if kernel == MKL_TRANSPOSED:
        return _mkl_transposed(x, weight, bias)
    return _mkl(x, weight, bias)


def fastest(timed: dict[str, list[float]], margin: float = MARGIN) -> str:
    """The choice from timed calls: the kernel with the lowest median time, if that median is at
    most ``margin`` of F.linear's (``mkl``); else ``mkl``.

    Args:
        timed: Kernel name -> the seconds of its timed calls; must include ``mkl``.
    """
    if not timed.get(MKL) or not all(timed.values()):
        raise ValueError(f"fastest: needs timed calls of mkl and of every kernel, got {timed}")
    medians = {kernel: median(seconds) for kernel, seconds in timed.items()}
    best = min(medians, key=medians.__getitem__)
    return best if medians[best] <= margin * medians[MKL] else MKL


def _candidates() -> tuple[str, ...]:
    return (ONEDNN, MKL, MKL_TRANSPOSED) if onednn_linear_available() else (MKL, MKL_TRANSPOSED)


def _measured(key: Key, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """One call of a shape still being measured: the kernel with the fewest calls so far (in
    the order of :func:`_candidates` on ties), timed.

    The bookkeeping is under a lock (Python threads may share a model); the product is not,
    so products of threads running at once may be timed while competing for the cores.
    """
    with _lock:
        chosen = _chosen.get(key)
        if chosen is None:  # (another thread may have decided since the caller looked)
            trials = _trials.setdefault(key, {kernel: [] for kernel in _candidates()})
            kernel = min(trials, key=lambda name: len(trials[name]))
    if chosen is not None:
        return _product(chosen, x, weight, bias)
    start = time.perf_counter()
    out = _product(kernel, x, weight, bias)
    elapsed = time.perf_counter() - start
    with _lock:
        if key in _trials:
            trials[kernel].append(elapsed)
            if min(map(len, trials.values())) >= WARMUP_CALLS + TIMED_CALLS:
                _chosen[key] = fastest({k: t[WARMUP_CALLS:] for k, t in trials.items()})
                del _trials[key]
    return out


def chosen_kernels() -> dict[str, str]:
    """The kernel chosen for each product shape measured so far in this process.

    Returns:
        ``{"<in>x<out>, <lo>-<hi> rows, <n> threads": "mkl", "mkl_transposed" or "onednn"}``.
    """
    out = {}
    for (bits, inner, cols, threads), kernel in sorted(_chosen.items()):
        rows = f"{1 << (bits - 1)}-{(1 << bits) - 1}" if bits else "0"
        out[f"{inner}x{cols}, {rows} rows, {threads} threads"] = kernel
    return out


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through another kernel (oneDNN, or MKL on a transposed
    weight) when nothing needs a gradient and, for this shape on this CPU, it was measured
    faster (see the module's description).

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
    ):
        return F.linear(x, weight, bias)
    rows = x.numel() // x.shape[-1]
    key = (rows.bit_length(), weight.shape[1], weight.shape[0], torch.get_num_threads())
    chosen = _chosen.get(key)
    if chosen is not None:
        return _product(chosen, x, weight, bias)
    if not in_forward_pass():
        # Shapes are measured only within a forward pass, where each kernel runs as itself
        # (outside one, the transposed kernel has no kept copy and is F.linear).
        return F.linear(x, weight, bias)
    return _measured(key, x, weight, bias)
