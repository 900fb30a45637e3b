"""Reading and writing Asteroid model files safely (``weights_only=True``).

One way in for every model source (:func:`read_model_package`): a package dict, a local file, a
folder holding a model file (a clone of a hub repo, a publish folder), or a Hugging Face hub id /
URL, fetched into Asteroid's cache by Asteroid's own ``cached_download`` (``$ASTEROID_CACHE``),
so a model is fetched once whichever toolkit asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

MODEL_FILE_KEYS = ("model_name", "model_args", "state_dict")
# What the hub serves and Asteroid's from_pretrained fetches (huggingface_hub's
# PYTORCH_WEIGHTS_NAME); then the names our stages write.
HUB_FILENAME = "pytorch_model.bin"
FOLDER_FILES = (HUB_FILENAME, "model.pth", "best_model.pth")


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
    check_package(package, str(path))
    return package


def check_package(package: Mapping[str, Any], where: str) -> None:
    """Raise a ValueError naming what ``package`` holds unless it is a model package.

    Both Asteroid's packages and the authors' released ``TDANetBest`` files have the keys
    ``model_name``, ``model_args`` and ``state_dict``.
    """
    missing = [key for key in MODEL_FILE_KEYS if key not in package]
    if not missing:
        return
    keys = sorted(str(k) for k in package)
    found = f"keys {keys[:8]}{' ...' if len(keys) > 8 else ''}"
    if package and all(isinstance(v, torch.Tensor) for v in package.values()):
        found = f"a bare state dict of {len(package)} tensors ({found})"
    raise ValueError(
        f"{where} is neither an Asteroid model package nor a released TDANetBest checkpoint: "
        f"it lacks {missing} and holds {found}. Save models with torch.save(model.serialize(), "
        "path); a bare state dict needs its model: model.load_state_dict(torch.load(path))"
    )


def resolve_model_source(source: str | Path) -> Path:
    """The local model file for a file, a folder, a Hugging Face hub id or a URL.

    Args:
        source: A model file; a folder holding ``pytorch_model.bin``, ``model.pth`` or
            ``best_model.pth``; a hub id ``owner/name`` (``@revision`` allowed) or a URL,
            fetched with Asteroid's ``cached_download`` (``pytorch_model.bin``).

    Raises:
        FileNotFoundError: A folder without a model file, or a name that is neither a local
            path nor a fetchable hub id / URL (the message says both attempts).
    """
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        for name in FOLDER_FILES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"{path} is a folder without a model file ({', '.join(FOLDER_FILES)})"
        )
    if not isinstance(source, str):
        raise FileNotFoundError(f"model file not found: {path}")
    from asteroid.utils.hub_utils import cached_download

    try:
        return Path(cached_download(source))
    except Exception as err:  # huggingface_hub/requests raise many kinds; say what was tried
        raise FileNotFoundError(
            f"model {source!r} not found: it is not a local file or folder, and fetching "
            f"{HUB_FILENAME} from the Hugging Face hub repo (or URL) {source!r} failed: "
            f"{type(err).__name__}: {err}"
        ) from err


def read_model_package(
    source: str | Path | Mapping[str, Any], map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], str]:
    """A model package from any source, and a description of where it came from.

    Args:
        source: A package dict, or anything :func:`resolve_model_source` accepts.
        map_location: Where to put the tensors (files only).

    Returns:
        ``(package, where)``; a given dict is copied (its ``model_args`` too), never modified.
    """
    if isinstance(source, Mapping):
        check_package(source, "the given package")
        package = dict(source)
        package["model_args"] = dict(package["model_args"])
        return package, "the given package"
    path = resolve_model_source(source)
    where = str(path) if str(path) == str(source) else f"{source} ({path})"
    return load_model_file(path, map_location), where


def load_model(
    source: str | Path | Mapping[str, Any], map_location: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Instantiate any registered Asteroid model (ours included) from any model source.

    The content decides: an Asteroid package gives its registered class; the authors' released
    ``TDANetBest`` package gives a TDANet in legacy mode (logged).

    Args:
        source: A package dict, a model file, a folder holding one, or a hub id / URL (see
            :func:`resolve_model_source`).
        map_location: Where to put the tensors (files only).

    Returns:
        The model, in eval mode.

    Raises:
        FileNotFoundError: No such file, folder or hub repo.
        ValueError: Not a model package, or a ``model_name`` that no installed package registers.
    """
    from . import get_model

    package, where = read_model_package(source, map_location)
    try:
        model_class = get_model(package["model_name"])
    except ValueError as err:
        raise ValueError(
            f"{where} holds a model named {package['model_name']!r}, which no installed package "
            "registers with asteroid.models; import the package that defines it first"
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
