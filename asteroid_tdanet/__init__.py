"""TDANet (ICLR 2023) as an Asteroid plugin.

Importing this package registers ``TDANet``, ``TDANetLarge`` and ``Sepformer`` with
``asteroid.models`` (so ``asteroid.models.get("TDANet")`` works); importing or reloading it again
is harmless.
"""

from __future__ import annotations

from .masker import TDANetMasker
from .models import TDANet, TDANetLarge
from .sepformer import Sepformer
from .version import __version__

__all__ = ["Sepformer", "TDANet", "TDANetLarge", "TDANetMasker", "__version__", "register_models"]


def register_models() -> None:
    """Make our models gettable by name from ``asteroid.models`` (idempotent)."""
    from asteroid import models

    for model_class in (TDANet, TDANetLarge, Sepformer):
        try:
            registered = models.get(model_class.__name__)
        except ValueError:
            registered = None
        if registered is None:
            models.register_model(model_class)
        elif registered is not model_class:
            # A reload of this package defines new classes: point the registry at them.
            setattr(models, model_class.__name__, model_class)


register_models()
