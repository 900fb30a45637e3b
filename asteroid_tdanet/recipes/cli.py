"""Small helpers shared by the recipe entry points in ``local/``."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn


def yes_no(text: str) -> bool:
    """Kaldi-style boolean option value (``yes``/``no``, also ``true``/``false``/``1``/``0``).

    Raises:
        SystemExit: Any other text.
    """
    low = text.strip().lower()
    if low in ("yes", "true", "1"):
        return True
    if low in ("no", "false", "0", ""):
        return False
    raise SystemExit(f"ERROR: expected yes or no, got {text!r}")


def setup_logging() -> None:
    """Readable log lines on stderr."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def fail(err: BaseException) -> NoReturn:
    """Print an expected error as one readable line and exit with status 1."""
    print(f"ERROR: {err}", file=sys.stderr)
    raise SystemExit(1)
