"""Process-wide on/off settings of the CPU speed-ups, each with an environment variable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Switch"]


class Switch:
    """An on/off setting for the whole process, unless set, what its environment variable says.

    Args:
        env_var: Read once, at construction: ``0``, ``false`` or ``no`` switch it off, any
            other value on.
        default: The setting when the variable is not set.
    """

    def __init__(self, env_var: str, default: bool = True) -> None:
        value = os.environ.get(env_var, "").strip().lower()
        self.enabled = default if value == "" else value not in ("0", "false", "no")

    def set(self, enabled: bool) -> None:
        """Switch on or off for the whole process."""
        self.enabled = bool(enabled)

    @contextmanager
    def scoped(self, enabled: bool) -> Iterator[None]:
        """Switch on or off inside the block, then restore the previous setting."""
        previous = self.enabled
        self.set(enabled)
        try:
            yield
        finally:
            self.set(previous)
