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


# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
_LARGEST_MMAP_THRESHOLD = 32 << 20


def _mallopt():
    """glibc's ``mallopt``, or ``None`` off glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def reuse_freed_memory() -> bool:
    """Keep freed activations in glibc's heap and reuse them, instead of mapping fresh pages.

    By default glibc gives allocations of a few megabytes their own mappings and unmaps them when
    freed, and trims the heap when its top is free; every new activation tensor then costs a
    page fault per 4 KiB page and the kernel zeroing it. A forward pass of the full-size TDANet
    allocates hundreds of megabytes of short-lived activations, so that bookkeeping is a large
    share of its CPU time (see ``results/cpu-speed.json``, ``allocator``). With the largest
    mmap threshold and no trimming, freed blocks are reused; the price is that the process keeps
    its peak heap resident, which for chunked separation is the peak of one chunk.

    Returns:
        Whether the settings were applied (False off glibc, where nothing changes).
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    applied = mallopt(_M_MMAP_THRESHOLD, _LARGEST_MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and applied


def configure_cpu_process() -> None:
    """The process-wide settings of our CPU entry points (CLIs, training, evaluation, benchmarks).

    :func:`flush_denormals` and :func:`reuse_freed_memory`; call it once, before the work.
    """
    flush_denormals()
    reuse_freed_memory()
