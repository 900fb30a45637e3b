"""Counting multiply-accumulates (MACs) of a separation model's forward pass.

Two counters:

- :func:`count_macs` runs the model under ``torch.utils.flop_counter.FlopCounterMode``, which
  sees every aten op after decomposition (so functional calls, einsum and attention are
  included, not only ``nn.Module`` leaves). MACs = FLOPs / 2; biases and element-wise work are
  not counted (the usual convention). Two known holes are closed here: the fused
  ``nn.MultiheadAttention`` fast path (an op the counter has no formula for) is disabled while
  counting, and formulas are registered for the CPU attention kernel
  (``_scaled_dot_product_flash_attention_for_cpu``) and for backend convolutions a model may call
  directly (``slow_conv_transpose2d`` and kin). A guard records every op that ran and
  raises :class:`UncountedOpError` when a heavy op (matmul, convolution, attention, RNN, FFT)
  had no formula, since a silent zero is the known failure of every counter.
- :func:`count_macs_ptflops` uses ptflops (module hooks, the tool the TDANet authors used), so
  numbers compare with the literature. It also counts some element-wise work (norms,
  activations, interpolation) and misses ops that are not modules or patched functionals.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_flop_count

from asteroid_tdanet.fast import fast_path
from asteroid_tdanet.kernels import onednn_linear

__all__ = [
    "MacCount",
    "UncountedOpError",
    "count_macs",
    "count_macs_detailed",
    "count_macs_ptflops",
    "count_params",
    "mha_fastpath_disabled",
]

aten = torch.ops.aten


class UncountedOpError(RuntimeError):
    """A heavy op ran during counting but the counter has no formula for it."""


def _cpu_attention_flops(
    query_shape: list[int],
    key_shape: list[int],
    value_shape: list[int],
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """FLOPs of the CPU fused attention kernel: Q K^T and (softmax) V, as for the GPU kernels."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _direct_conv_flops(
    x_shape: list[int], w_shape: list[int], *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """FLOPs of a backend convolution op called directly (input, weight first)."""
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


def _direct_conv_transpose_flops(
    x_shape: list[int], w_shape: list[int], *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """FLOPs of a backend transposed convolution called directly (input, weight first)."""
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=True)


# Formulas FlopCounterMode lacks in this torch version, keyed by op packet. Models may call the
# backend convolutions directly (e.g. ``slow_conv_transpose2d``, faster than oneDNN on CPU for
# long 1-D kernels); the counter only knows ``convolution`` and its dispatch targets.
_FORMULAS_BY_NAME = {
    "_scaled_dot_product_flash_attention_for_cpu": _cpu_attention_flops,
    "slow_conv_transpose2d": _direct_conv_transpose_flops,
    "slow_conv_transpose3d": _direct_conv_transpose_flops,
    "thnn_conv2d": _direct_conv_flops,
    "slow_conv3d": _direct_conv_flops,
    "slow_conv_dilated2d": _direct_conv_flops,
    "slow_conv_dilated3d": _direct_conv_flops,
    "_conv_depthwise2d": _direct_conv_flops,
    "mkldnn_convolution": _direct_conv_flops,
}
EXTRA_FORMULAS: dict[Any, Any] = {
    getattr(aten, name): formula
    for name, formula in _FORMULAS_BY_NAME.items()
    if hasattr(aten, name)
}

# Names of ops that do real arithmetic work; any of them left uncounted makes a count wrong.
_HEAVY_NAME = re.compile(
    r"(conv(?!ert)|attention|matmul|einsum|lstm|gru|rnn|fft|stft|tensordot|baddbmm|addmm|bmm)"
    r"|(^|_)mm$|^_?\w*_mm$|^(dot|vdot|mv|addmv|addr|ger|outer|bilinear|_trilinear)$"
    r"|(^|_)linear($|_)"  # linear, oneDNN's _linear_pointwise, quantized linear_dynamic, ...
)
# Names that match the pattern above but are cheap data movement.
_NOT_HEAVY = re.compile(r"^(upsample|_upsample|im2col|col2im)")


def is_heavy_op(name: str) -> bool:
    """Whether an aten op name denotes real arithmetic work (matmul, conv, attention, ...).

    Args:
        name: The op's base name, e.g. ``"addmm"`` or ``"_native_multi_head_attention"``.
    """
    return bool(_HEAVY_NAME.search(name)) and not _NOT_HEAVY.search(name)


class _OpRecorder(TorchDispatchMode):
    """Records every aten op packet that actually runs (below the flop counter's mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[Any] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.ops[func._overloadpacket] += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def mha_fastpath_disabled() -> Iterator[None]:
    """Disable ``nn.MultiheadAttention``'s fused fast path, whose op has no FLOP formula."""
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


@dataclass
class MacCount:
    """Result of :func:`count_macs_detailed`.

    Attributes:
        macs: Total multiply-accumulates (FLOPs / 2) of one forward pass.
        by_op: MACs per aten op name.
        uncounted: Heavy ops that ran without a formula, with their call counts (empty when
            the count is complete).
    """

    macs: int
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)


def count_macs_detailed(
    model: nn.Module,
    *inputs: torch.Tensor,
    strict: bool = True,
    disable_mha_fastpath: bool = True,
) -> MacCount:
    """Count the MACs of ``model(*inputs)`` with FlopCounterMode, with the uncounted-op guard.

    The model is put in eval mode for the count and restored afterwards.

    Args:
        model: Any module.
        *inputs: The forward arguments.
        strict: Raise :class:`UncountedOpError` if a heavy op ran without a formula;
            otherwise report it in ``MacCount.uncounted``.
        disable_mha_fastpath: Disable the fused attention fast path while counting (leave it
            on only to demonstrate the hole the guard catches).

    Returns:
        The total and per-op MACs.

    Raises:
        UncountedOpError: in strict mode, naming every heavy op the counter missed.
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    try:
        with (
            mha_fastpath_disabled() if disable_mha_fastpath else nullcontext(),
            # The plain modules: the model's MACs as defined, whatever fast path runs it, and
            # F.linear (the counter has no formula for oneDNN's matmul, chosen per CPU).
            fast_path(False),
            onednn_linear(False),
            torch.no_grad(),
            _OpRecorder() as recorder,
            counter,
        ):
            model(*inputs)
    finally:
        model.train(was_training)

    uncounted = {
        str(op): n
        for op, n in recorder.ops.items()
        if op not in counter.flop_registry and is_heavy_op(op.__name__)
    }
    if uncounted and strict:
        raise UncountedOpError(
            f"{type(model).__name__}: heavy ops ran without a FLOP formula (the count would be "
            f"too low): {uncounted}. Register a formula in asteroid_tdanet.bench.macs."
            "EXTRA_FORMULAS or avoid the op while counting."
        )
    by_op = {str(op): int(f) // 2 for op, f in counter.get_flop_counts().get("Global", {}).items()}
    return MacCount(macs=counter.get_total_flops() // 2, by_op=by_op, uncounted=uncounted)


def _model_input(model: nn.Module, num_samples: int, batch_size: int = 1) -> torch.Tensor:
    """A random (batch, time) waveform on the model's device and dtype."""
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, num_samples, generator=gen).to(device=device, dtype=dtype)


def count_macs(model: nn.Module, num_samples: int, batch_size: int = 1) -> int:
    """MACs of one forward pass of a separation model on ``(batch_size, num_samples)`` audio.

    Counted with FlopCounterMode (MACs = FLOPs / 2), attention fast path disabled, CPU
    attention formula registered, and the guard on (see the module docstring).

    Args:
        model: A waveform model: (batch, time) -> (batch, n_src, time).
        num_samples: Input length in samples (MACs per second = macs * sample_rate / length).
        batch_size: Batch size of the input.

    Returns:
        The number of multiply-accumulates.

    Raises:
        UncountedOpError: if a heavy op ran without a formula.
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    return count_macs_detailed(model, _model_input(model, num_samples, batch_size)).macs


def count_macs_ptflops(model: nn.Module, num_samples: int, backend: str = "pytorch") -> int:
    """MACs of one forward pass on ``(1, num_samples)`` audio, counted by ptflops.

    ptflops is the counter the TDANet authors used; its default ``pytorch`` backend hooks
    modules and patches some functionals, counts some element-wise work, and misses the rest.
    The model is deep-copied, since ptflops adds attributes and hooks to the model it counts.

    Args:
        model: A waveform model: (batch, time) -> (batch, n_src, time).
        num_samples: Input length in samples.
        backend: ``"pytorch"`` (module hooks, as in the literature) or ``"aten"``.

    Returns:
        The number of multiply-accumulates reported by ptflops.

    Raises:
        ImportError: if ptflops is not installed (``pip install asteroid-tdanet[bench]``).
        RuntimeError: if ptflops could not count the model.
    """
    try:
        from ptflops import get_model_complexity_info
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ptflops is needed for this column: pip install 'asteroid-tdanet[bench]'"
        ) from err
    clone = copy.deepcopy(model).eval()
    wav = _model_input(clone, num_samples)
    # ptflops hooks modules; TDANet's fast path calls functionals, which it would not see.
    with torch.no_grad(), mha_fastpath_disabled(), fast_path(False):
        macs, _ = get_model_complexity_info(
            clone,
            (num_samples,),
            input_constructor=lambda _res: wav,
            as_strings=False,
            print_per_layer_stat=False,
            backend=backend,
            verbose=False,
        )
    if macs is None:
        raise RuntimeError(f"ptflops failed to count {type(model).__name__} (see its traceback)")
    return int(macs)


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as positional tables excluded)."""
    return sum(p.numel() for p in model.parameters())
