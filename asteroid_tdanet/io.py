"""Reading and writing Asteroid model files safely (``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

MODEL_FILE_KEYS = ("model_name", "model_args", "state_dict")


def plain_software_versions(versions: dict[str, Any]) -> dict[str, str]:
    """Version infos as plain strings (``torch.__version__`` is a ``TorchVersion`` object)."""
    return {key: str(value) for key, value in versions.items()}


def load_model_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an Asteroid model package from a file without executing pickled code.

    Args:
        path: File written by ``torch.save(model.serialize(), path)``.
        map_location: Where to put the tensors.

    Returns:
        The package: ``model_name``, ``model_args``, ``state_dict`` (and ``infos``).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is not a readable model package (names the missing keys), or it holds
            Python objects other than plain values and tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        package = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(
            f"{path} could not be read as a model file with weights_only=True ({err}). Files "
            "from this package hold only tensors and plain values; if you trust this file and it "
            "was written by an older Asteroid, load it with torch.load(path, weights_only=False) "
            "and re-save model.serialize()"
        ) from err
    if not isinstance(package, dict):
        raise ValueError(f"{path} holds a {type(package).__name__}, not a model package (dict)")
    missing = [key for key in MODEL_FILE_KEYS if key not in package]
    if missing:
        raise ValueError(
            f"{path} is not an Asteroid model package: missing keys {missing} (found "
            f"{sorted(package)}); for the authors' released checkpoints use "
            "TDANet.from_look2hear or tdanet-convert"
        )
    return package


def load_model(source: str | Path | dict[str, Any], map_location: str | torch.device = "cpu"):
    """Instantiate any registered Asteroid model (ours included) from a model file.

    Args:
        source: Model file written from ``model.serialize()``, or the package it holds.
        map_location: Where to put the tensors (files only).

    Returns:
        The model, in eval mode.
    """
    from asteroid.models import get

    from . import register_models

    register_models()
    package = source if isinstance(source, dict) else load_model_file(source, map_location)
    try:
        model_class = get(package["model_name"])
    except ValueError as err:
        raise ValueError(
            f"unknown model name {package['model_name']!r}; import the package that "
            "defines it before loading"
        ) from err
    return model_class.from_pretrained(package).eval()


def save_model_file(model: torch.nn.Module, path: str | Path) -> Path:
    """Write ``model.serialize()`` to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    package = model.serialize()
    if "infos" in package and "software_versions" in package["infos"]:
        package["infos"]["software_versions"] = plain_software_versions(
            package["infos"]["software_versions"]
        )
    torch.save(package, path)
    return path
