"""Sequences of fused-kernel calls, recorded once and run again in one native call.

A U-block makes about fifty calls of the fused kernels (:mod:`~asteroid_tdanet.native`) between
its matrix products, and TDANet applies the same U-block sixteen times per forward pass. From
Python each call costs several microseconds of argument conversion and bookkeeping, a tenth of
a short input's forward pass in all. So the fast path records the calls of the first
application, with the buffers they write, as a :class:`Program`, and runs it again for the
others: one native call (``tdanet_run``), with only the input's address changed.

Recording runs nothing: the kernels' calls are noted, not made, so no code in the recorded
block may read what they write. A kernel call that reads memory neither an input nor an earlier
step wrote is refused. With :data:`CHECKS` on (``TDANET_CHECK_RECORDINGS=1``; the test suite
turns it on), a torch operation on a recorded buffer also raises while recording (shape queries,
views and new empty tensors are allowed); it is off by default because it routes every torch
call of the recorded block through Python, which costs about 2% of a forward pass. A program is only
right for the parameters it was recorded with: the fast path keeps its programs for one
forward pass, in which no weight changes.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .switch import Switch

__all__ = [
    "CHECKS",
    "COPY",
    "DEPTHWISE",
    "GLN",
    "POOL_ADD",
    "Program",
    "Recorder",
    "active",
    "recording",
]

# Whether torch operations on recorded buffers raise while recording (see above).
CHECKS = Switch("TDANET_CHECK_RECORDINGS", default=False)

# The kinds of step (cpu_kernels.c's TDANET_STEP_*), and the words per step.
DEPTHWISE, GLN, POOL_ADD, COPY = 1, 2, 3, 4
STEP_WORDS = 20


@dataclass(frozen=True)
class _Layout:
    """Where a kernel's arguments (its C order, without ``threads``) hold what."""

    name: str
    reads: tuple[int, ...]  # addresses of activations it reads
    writes: tuple[int, ...]  # addresses it writes
    constants: tuple[int, ...] = ()  # addresses of parameters and frame indices
    doubles: tuple[int, ...] = ()  # floating-point numbers


_LAYOUTS = {
    DEPTHWISE: _Layout("depthwise", reads=(0,), writes=(10, 11), constants=(4, 5)),
    GLN: _Layout(
        "gln", reads=(0, 9, 10, 15), writes=(16, 17), constants=(4, 5, 6, 7, 12), doubles=(8, 14)
    ),
    POOL_ADD: _Layout("pool_add", reads=(0, 5), writes=(5,)),
    COPY: _Layout("copy", reads=(0,), writes=(1,)),
}

_local = threading.local()


def active() -> Recorder | None:
    """The recorder of this thread's :func:`recording` block, or ``None`` outside one."""
    return getattr(_local, "recorder", None)


def _bits(value: float) -> int:
    """A double's bit pattern as a signed 64-bit integer (how a step holds it)."""
    return struct.unpack("<q", struct.pack("<d", value))[0]


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class Recorder:
    """Collects the kernel calls of a :func:`recording` block.

    Args:
        inputs: The tensors that change between runs (their addresses become the first slots).
        after: A program whose buffers this one reads (recorded earlier, run before it).
    """

    def __init__(self, inputs: Sequence[torch.Tensor], after: Program | None = None) -> None:
        for t in inputs:
            if t.dtype != torch.float32 or not t.is_contiguous() or not t.is_cpu:
                raise ValueError(
                    f"recording: inputs must be contiguous float32 CPU tensors, not {t.dtype} "
                    f"{tuple(t.shape)} (contiguous: {t.is_contiguous()}) on {t.device}"
                )
        self.inputs = [(tuple(t.shape), t.dtype) for t in inputs]
        self.slots: dict[int, int] = {}
        for t in inputs:
            self.slots.setdefault(t.data_ptr(), len(self.slots))
        if len(self.slots) != len(inputs):
            raise ValueError("recording: two inputs share an address")
        self._input_addresses = frozenset(self.slots)
        self.steps: list[list[int]] = []
        self.keep: list[Any] = [] if after is None else [after]
        # Addresses a step may read: the inputs' and those earlier steps wrote (of ``after``,
        # only its buffers: its inputs' addresses change from run to run).
        self.written = set(self.slots) | (set() if after is None else after.outputs)
        # Storages of the buffers involved, which torch operations must not touch meanwhile.
        self.buffers = {_storage(t) for t in inputs} | (set() if after is None else after.buffers)

    def _slot(self, address: int | None) -> int:
        if address is None or address == 0:
            return -1
        return self.slots.setdefault(address, len(self.slots))

    def add(self, kind: int, args: Sequence[Any], tensors: Sequence[torch.Tensor | None]) -> None:
        """Note one kernel call.

        Args:
            kind: :data:`DEPTHWISE`, :data:`GLN`, :data:`POOL_ADD` or :data:`COPY`.
            args: The kernel's arguments in its C order, without ``threads``: addresses as
                ints (``None`` for NULL), sizes as ints, ``eps`` and ``slope`` as floats.
            tensors: Every tensor whose address is in ``args``, kept alive with the program.

        Raises:
            RuntimeError: if the call reads memory that is neither an input nor written by an
                earlier step (it would read what recording has not computed).
        """
        layout = _LAYOUTS[kind]
        for position in layout.reads:
            address = args[position]
            if address and address not in self.written:
                raise RuntimeError(
                    f"recording: step {len(self.steps)} ({layout.name}) reads memory that no "
                    "input holds and no earlier step writes"
                )
        addresses = {*layout.reads, *layout.writes, *layout.constants}
        words = [kind]
        for position, value in enumerate(args):
            if position in addresses:
                words.append(self._slot(value))
            elif position in layout.doubles:
                words.append(_bits(float(value)))
            else:
                words.append(int(value))
        words += [0] * (STEP_WORDS - len(words))
        self.steps.append(words)
        for position in layout.writes:
            if args[position]:
                self.written.add(args[position])
        present = [t for t in tensors if t is not None]
        # Not the inputs: each run reads the ones it is given (the first would stay allocated).
        self.keep.extend(t for t in present if t.data_ptr() not in self._input_addresses)
        self.buffers.update(
            _storage(t) for t in present if t.data_ptr() in self.written and t.is_floating_point()
        )


class Program:
    """Recorded kernel calls, run again on new inputs of the recorded shapes."""

    def __init__(self, recorder: Recorder) -> None:
        self._inputs = recorder.inputs
        # The addresses its steps write that stay the same from run to run, and the storages
        # of its inputs and buffers.
        self.outputs = recorder.written - recorder._input_addresses
        self.buffers = recorder.buffers
        self._keep = recorder.keep
        self._steps = torch.tensor(recorder.steps or [[0] * STEP_WORDS], dtype=torch.int64)
        self._count = len(recorder.steps)
        addresses = sorted(recorder.slots, key=recorder.slots.get)
        self._slots = (ctypes.c_void_p * max(len(addresses), 1))(*addresses)
        self._status = ctypes.c_int32(0)

    def __len__(self) -> int:
        return self._count

    def run(self, *inputs: torch.Tensor) -> None:
        """Run every step, reading ``inputs`` where the recording read its inputs.

        Raises:
            ValueError: for inputs that differ from the recorded ones in number, shape or
                dtype, or are not contiguous.
            MemoryError: if a kernel could not have its working memory.
        """
        from .native import library

        if len(inputs) != len(self._inputs):
            raise ValueError(f"program: {len(inputs)} inputs given, {len(self._inputs)} recorded")
        for i, (t, (shape, dtype)) in enumerate(zip(inputs, self._inputs, strict=True)):
            if tuple(t.shape) != shape or t.dtype != dtype or not t.is_contiguous() or not t.is_cpu:
                raise ValueError(
                    f"program: input {i} must be a contiguous {dtype} CPU tensor {shape}, "
                    f"not {t.dtype} {tuple(t.shape)} on {t.device}"
                )
            self._slots[i] = t.data_ptr()
        lib = library()
        done = lib.tdanet_run(
            self._steps.data_ptr(),
            self._count,
            self._slots,
            torch.get_num_threads(),
            ctypes.byref(self._status),
        )
        if done != self._count:
            raise _failure(self._steps[done].tolist(), self._status.value)


def _failure(step: list[int], status: int) -> Exception:
    """The error of a failed ``step`` (its words), as the kernel's direct call raises it."""
    from .native import step_failed

    kind = step[0]
    if kind == DEPTHWISE:  # the output's shape: batch, output frames, channels
        return step_failed("depthwise", status, (step[2], step[10], step[4]))
    if kind == GLN:
        return step_failed("gln", status, tuple(step[2:5]), sources=step[12])
    return step_failed(_LAYOUTS[kind].name if kind in _LAYOUTS else f"step kind {kind}", status)


# Operations a recorded buffer may go through while recording: none reads its values.
_METADATA = frozenset(
    {
        "__get__",  # .shape, .dtype, .mT and other properties
        "data_ptr",
        "dim",
        "is_contiguous",
        "numel",
        "element_size",
        "is_floating_point",
        "size",
        "stride",
        "storage_offset",
        "untyped_storage",
        "empty_like",
        "view",
        "unsqueeze",
        "squeeze",
        "unflatten",
        "flatten",
        "contiguous",  # allowed where it returns the tensor itself (checked below)
        "__len__",
    }
)


class _ReadGuard(TorchFunctionMode):
    """Raises on torch operations that would read or write a recorded buffer while recording."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def _touches(self, values: Iterator[Any]) -> bool:
        buffers = self.recorder.buffers
        for value in values:
            if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() in buffers:
                return True
            if isinstance(value, (list, tuple)) and self._touches(iter(value)):
                return True
        return False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in _METADATA and name != "contiguous":  # (most calls: no need to look further)
            return func(*args, **kwargs)
        if self._touches(iter((*args, *kwargs.values()))) and (
            name != "contiguous" or not args[0].is_contiguous()
        ):
            raise RuntimeError(
                f"recording: torch operation {name!r} on a buffer of the recorded kernels, "
                "whose values are computed only when the program runs"
            )
        return func(*args, **kwargs)


@contextmanager
def recording(*inputs: torch.Tensor, after: Program | None = None) -> Iterator[Recorder]:
    """Record the fused kernels' calls of the block instead of making them.

    Use :class:`Program` ``(recorder)`` after the block to get what runs them. Nothing in the
    block may read what the calls write (see the module's description).

    Args:
        inputs: Tensors that change between runs (contiguous float32).
        after: The program run before this one whose buffers the block reads.
    """
    if active() is not None:
        raise RuntimeError("recording: already recording in this thread")
    recorder = Recorder(inputs, after)
    _local.recorder = recorder
    try:
        with _ReadGuard(recorder) if CHECKS.enabled else nullcontext():
            yield recorder
    finally:
        _local.recorder = None
