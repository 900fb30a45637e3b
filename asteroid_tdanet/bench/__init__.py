"""Efficiency benchmark: parameters, MACs (two counters), CPU and accelerator time.

The command line is ``tdanet-bench`` (``python -m asteroid_tdanet.bench``); the functions below
are what other tools reuse.
"""

from __future__ import annotations

from .macs import (
    MacCount,
    UncountedOpError,
    count_macs,
    count_macs_detailed,
    count_macs_ptflops,
    count_params,
)
from .timing import cpu_rtf, summarize, time_interleaved

__all__ = [
    "MacCount",
    "UncountedOpError",
    "count_macs",
    "count_macs_detailed",
    "count_macs_ptflops",
    "count_params",
    "cpu_rtf",
    "summarize",
    "time_interleaved",
]
