"""Copies of weights in another layout, kept between forward passes while the weights are unchanged.

The fused depthwise convolution (:mod:`~asteroid_tdanet.native`) reads its weight as ``(K, C)``
taps, a transposed copy, and MKL multiplies faster by a transposed copy of a matrix-product weight
on some CPUs (:mod:`~asteroid_tdanet.kernels`). Making a copy at every call costs about a percent
of a forward pass; keeping it is only right while the weight is unchanged, and no cheap signal
says so: an update through ``param.data`` (an EMA, a manual load) bumps no version counter and
keeps the data pointer. So a kept copy is checked against its weight exactly (bit for bit against
a snapshot of the weight, :func:`same_bits`) once per forward pass (:func:`forward_pass`, entered
by the separator's fast path), and trusted for the rest of that pass, in which no weight changes.
Outside a pass, :meth:`Derived.get` makes a fresh copy at each call and :meth:`Derived.kept`
gives none. (oneDNN's blocked copies of the weights were tried the same way: their check cost as
much as they saved.)
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

__all__ = ["Derived", "forward_pass", "in_forward_pass", "same_bits"]

# Per thread: how deep in forward_pass() it is, and which copies were checked in this pass.
_state = threading.local()


@contextmanager
def forward_pass() -> Iterator[None]:
    """Within the block, kept copies are checked against their weights once, then trusted.

    Nested blocks share the outermost one's checks. Each thread has its own.
    """
    depth = getattr(_state, "depth", 0)
    if depth == 0:
        _state.checked = set()
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth
        if depth == 0:
            _state.checked = None


def _libc_memcmp() -> Callable[..., int] | None:
    try:
        function = ctypes.CDLL(None).memcmp
    except (OSError, AttributeError, TypeError):  # no C library to ask (Windows takes no None)
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_memcmp = _libc_memcmp()


def same_bits(snapshot: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``weight`` still holds the bits of ``snapshot`` (a clone of it).

    Bits, not values, for contiguous CPU tensors (one ``memcmp``, about twice as fast as
    ``torch.equal``, which matters for the megabytes of matrix-product weights checked once per
    pass): a copy made from a NaN is still right while the NaN is there, and a zero whose sign
    flipped gets a new copy. Other tensors are compared by value (``torch.equal``: a NaN then
    counts as a change, which only costs a new copy).
    """
    if snapshot.shape != weight.shape or snapshot.dtype != weight.dtype:
        return False
    both = (snapshot, weight)
    if _memcmp is None or not all(t.is_cpu and t.is_contiguous() for t in both):
        return bool(torch.equal(snapshot, weight))
    size = weight.numel() * weight.element_size()
    return size == 0 or _memcmp(snapshot.data_ptr(), weight.data_ptr(), size) == 0


def in_forward_pass() -> bool:
    """Whether this thread is inside a :func:`forward_pass` (where copies are kept)."""
    return getattr(_state, "checked", None) is not None


class Derived:
    """Copies ``make(weight)`` of weights, kept while each weight's values are unchanged.

    Args:
        make: The copy of a weight in the other layout (called under ``torch.no_grad``).
    """

    def __init__(self, make: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.make = make
        # (id of the weight's base tensor, shape, strides, storage offset) -> (weak reference
        # to the base, snapshot of the weight's values, the copy).
        self.entries: dict[tuple, tuple[weakref.ref, torch.Tensor, torch.Tensor]] = {}
        # Reentrant: a finalizer (_forget) may run in the middle of an update, in the same thread.
        self._lock = threading.RLock()

    def _forget(self, base_id: int) -> None:
        with self._lock:
            for key in [key for key in self.entries if key[0] == base_id]:
                del self.entries[key]

    def get(self, weight: torch.Tensor) -> torch.Tensor:
        """``make(weight)`` for a parameter or a view of one: within a :func:`forward_pass`, the
        kept copy (see :meth:`kept`); outside a pass, a fresh copy."""
        copy = self.kept(weight)
        if copy is None:
            with torch.no_grad():
                return self.make(weight)
        return copy

    def kept(self, weight: torch.Tensor) -> torch.Tensor | None:
        """The kept copy of ``weight``, made or remade (if the weight's values changed) at the
        first call of a :func:`forward_pass`; ``None`` outside a pass. Inference tensors (no
        owner to outlive) are not kept: each call gets a fresh copy."""
        checked = getattr(_state, "checked", None)
        if checked is None:
            return None
        base = weight if weight._base is None else weight._base
        key = (id(base), tuple(weight.shape), weight.stride(), weight.storage_offset())
        entry = self.entries.get(key)
        if (key, id(self)) not in checked or entry is None:
            with torch.no_grad(), self._lock:
                if base.is_inference():
                    return self.make(weight)
                entry = self.entries.get(key)  # (another thread may have made it meanwhile)
                if entry is None or entry[0]() is not base or not same_bits(entry[1], weight):
                    if not any(other[0] == id(base) for other in self.entries):
                        weakref.finalize(base, self._forget, id(base))
                    entry = (weakref.ref(base), weight.clone(), self.make(weight))
                    self.entries[key] = entry
            checked.add((key, id(self)))
        return entry[2]
