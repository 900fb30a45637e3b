"""Process-wide numeric settings for the CPU entry points (training, evaluation, separation)."""

from __future__ import annotations

import torch


def flush_denormals() -> None:
    """Treat denormal floats as zero on this process's CPU computations.

    Real speech has near-silent stretches, and TDANet's training then produces denormal numbers
    (around 1e-39) that x86 CPUs process up to a hundred times slower: measured on the demo data,
    a training step took 6.5 s instead of 1.6 s. Flushing them to zero changes results by less
    than float32's precision near zero. GPUs flush by default in these kernels.
    """
    torch.set_flush_denormal(True)


# glibc's mallopt parameter number for the mmap threshold (malloc.h: M_MMAP_THRESHOLD).
_M_MMAP_THRESHOLD = -3
# Allocations from this size up get their own mapping, returned to the system when freed.
RETURN_FREED_ABOVE_BYTES = 1 << 20


def return_large_frees_to_the_system(threshold: int = RETURN_FREED_ABOVE_BYTES) -> bool:
    """Make glibc give every freed allocation of ``threshold`` bytes or more back to the system.

    glibc serves large allocations (activations of megabytes) with their own mappings, but after
    the first such free it raises that threshold to the freed size, so later activations come from
    the heap, and freed heap memory stays resident: separating chunk after chunk, the peak
    resident memory then carries a heap of freed activations. A fixed threshold stops that
    (measured, full-size TDANet on a 5 s chunk at 8 kHz: peak 961 -> 895 MiB), at the cost of a
    page fault per page of each large tensor.

    Returns:
        Whether the setting was applied (False off glibc, where nothing changes).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1
