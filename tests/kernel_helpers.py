"""Fixing which matrix-product kernel kernels.linear picks, for tests that need one or the other."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asteroid_tdanet import kernels


class _Always(dict):
    """A table of choices that answers the same for every product shape."""

    def __init__(self, onednn: bool) -> None:
        super().__init__()
        self.onednn = onednn

    def get(self, key, default=None):
        return self.onednn


@pytest.fixture
def kernel_choice(monkeypatch) -> Callable[[bool | None], None]:
    """``kernel_choice(True)``: oneDNN for every shape; ``False``: MKL; ``None``: nothing
    measured yet (fresh tables, so the next calls of each shape are measured)."""

    def fix(onednn: bool | None) -> None:
        monkeypatch.setattr(kernels, "_chosen", {} if onednn is None else _Always(onednn))
        monkeypatch.setattr(kernels, "_trials", {})

    return fix
