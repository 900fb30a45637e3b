"""TDANet (ICLR 2023) as an Asteroid plugin.

Importing this package registers ``TDANet``, ``TDANetLarge`` and ``TDANetBest`` (the authors'
released checkpoint format) with ``asteroid.models``, so ``asteroid.models.get("TDANet")`` works.
The Sepformer baseline is not registered there (the name is common: another package may register
its own); :func:`get_model` finds it, and every model Asteroid knows. Installing the package also
installs a start-up hook (``asteroid_tdanet_hook``) that does this import as soon as any process
imports ``asteroid.models``, so Asteroid's own tools and ESPnet find the models without glue.

A name that another package already registered with a different class is left to that class
(with a warning naming both); importing or reloading this package again is harmless.
"""

from __future__ import annotations

import importlib
import warnings

from .masker import TDANetMasker
from .models import TDANet, TDANetBest, TDANetLarge
from .sepformer import Sepformer
from .version import __version__

__all__ = [
    "Sepformer",
    "TDANet",
    "TDANetBest",
    "TDANetLarge",
    "TDANetMasker",
    "__version__",
    "get_model",
    "register_models",
]

# Registered with asteroid.models (by this import and by the start-up hook).
MODELS = (TDANet, TDANetLarge, TDANetBest)
# Ours but not registered: found by get_model only.
UNREGISTERED = (Sepformer,)


def _qualname(klass: type) -> str:
    return f"{klass.__module__}.{klass.__qualname__}"


def register_models() -> None:
    """Make our models gettable by name from ``asteroid.models`` (idempotent).

    A name already taken by another package's class keeps that class: Asteroid's registry is
    shared, so ours is then only reachable as ``asteroid_tdanet.<Name>``, and a RuntimeWarning
    names both classes. A class from an earlier import of this package (``importlib.reload``)
    is replaced by the current one.
    """
    # The module in sys.modules: while a new asteroid.models runs (the start-up hook calls this
    # from inside its import), `from asteroid import models` would still give the old one.
    models = importlib.import_module("asteroid.models")
    for model_class in MODELS:
        name = model_class.__name__
        try:
            registered = models.get(name)  # case-insensitive, as Asteroid's own check
        except ValueError:
            models.register_model(model_class)
            continue
        if registered is model_class:
            continue
        if _qualname(registered) == _qualname(model_class):
            setattr(models, registered.__name__, model_class)  # our own, reloaded
            continue
        warnings.warn(
            f"asteroid.models already registers {registered.__name__!r} as "
            f"{_qualname(registered)}; asteroid-tdanet leaves it there and does not register its "
            f"own {_qualname(model_class)} (use asteroid_tdanet.{name} directly)",
            RuntimeWarning,
            stacklevel=2,
        )


def get_model(name: str) -> type:
    """The model class called `name` (case-insensitive): ours first, then ``asteroid.models``.

    Args:
        name: A model name, e.g. "TDANet", "Sepformer" (our baseline) or "ConvTasNet".

    Returns:
        The class.

    Raises:
        ValueError: No such model here nor in ``asteroid.models``.
    """
    for model_class in (*MODELS, *UNREGISTERED):
        if model_class.__name__.lower() == name.lower():
            return model_class
    from asteroid.models import get

    return get(name)


register_models()
