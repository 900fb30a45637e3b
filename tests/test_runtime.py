"""Process-wide settings of the CPU entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# A 16 MiB block is mmapped; freeing it makes glibc serve the next one from the heap, where (with
# a small block above it) its memory stays resident after the free, unless the threshold is fixed.
HEAP_GROWTH = textwrap.dedent(
    """
    import sys
    import numpy as np
    from asteroid_tdanet.runtime import return_large_frees_to_the_system

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    if sys.argv[1] == "fixed":
        assert return_large_frees_to_the_system()
    a = np.ones(2**21)
    del a
    base = rss_mb()
    b = np.ones(2**21)
    c = np.ones(2**10)
    del b
    print(round(rss_mb() - base))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc only")
def test_freed_activations_do_not_stay_resident():
    def kept_mb(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", HEAP_GROWTH, mode], capture_output=True, text=True, check=True
        )
        return int(run.stdout.split()[-1])

    assert kept_mb("default") >= 12  # glibc's default: the freed 16 MiB stay resident
    assert kept_mb("fixed") <= 2
