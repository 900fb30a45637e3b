"""Process-wide settings of the CPU entry points (asteroid_tdanet.runtime)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Allocate with glibc's malloc (as torch does; numpy may ask for huge pages), touch and free an
# 8 MiB block a few times and count the page faults of the later rounds. The script first pins
# glibc's mmap threshold at 1 MiB (so every such block is a fresh mapping, as glibc's defaults
# often make it in a long forward pass); then, with "reuse", reuse_freed_memory must make later
# rounds reuse the freed block without faulting.
FAULTS = textwrap.dedent(
    """
    import ctypes, resource, sys
    from asteroid_tdanet.runtime import reuse_freed_memory

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    libc.mallopt(-3, 1 << 20)
    if sys.argv[1] == "reuse":
        assert reuse_freed_memory()

    def one_round():
        size = 8 << 20
        block = libc.malloc(size)
        libc.memset(block, 1, size)
        libc.free(block)

    one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        one_round()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_activations_are_reused_without_page_faults():
    def faults_per_round(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
        )
        return int(run.stdout.split()[-1])

    # Measured: about 500 (the kernel maps a few pages per fault); one per 4 KiB page at most.
    assert faults_per_round("fresh") >= 250
    assert faults_per_round("reuse") <= 20
