"""Fixing which matrix-product kernel kernels.linear picks, for tests that need one or the other."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asteroid_tdanet import kernels


class _Always(dict):
    """A table of choices that answers the same for every product shape."""

    def __init__(self, kernel: str) -> None:
        super().__init__()
        self.kernel = kernel

    def get(self, key, default=None):
        return self.kernel


@pytest.fixture
def kernel_choice(monkeypatch) -> Callable[[bool | str | None], None]:
    """``kernel_choice(True)``: oneDNN for every shape; ``False``: MKL (``F.linear``); a name of
    ``kernels`` (e.g. ``kernels.MKL_TRANSPOSED``): that kernel; ``None``: nothing measured yet
    (fresh tables, so the next calls of each shape are measured)."""

    def fix(kernel: bool | str | None) -> None:
        if isinstance(kernel, bool):
            kernel = kernels.ONEDNN if kernel else kernels.MKL
        monkeypatch.setattr(kernels, "_chosen", {} if kernel is None else _Always(kernel))
        monkeypatch.setattr(kernels, "_trials", {})

    return fix
