"""ONNX Runtime CPU runners for the timing table (optional column).

The export itself belongs to ``asteroid_tdanet.export.export_onnx(model, path, ...)``; when that
module or onnxruntime is missing, or a model does not export, the column is skipped with a note.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["OnnxUnavailable", "load_exporter", "make_onnx_runner"]


class OnnxUnavailable(RuntimeError):
    """The ONNX column cannot be produced (the message says why)."""


def load_exporter() -> Callable[..., Any]:
    """Return ``asteroid_tdanet.export.export_onnx`` after checking onnxruntime imports.

    Raises:
        OnnxUnavailable: if either is missing.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise OnnxUnavailable(
            f"onnxruntime not installed ({err}): pip install 'asteroid-tdanet[bench]'"
        ) from err
    try:
        from asteroid_tdanet.export import export_onnx
    except ImportError as err:
        raise OnnxUnavailable(f"asteroid_tdanet.export.export_onnx unavailable ({err})") from err
    return export_onnx


def _export(export_onnx: Callable[..., Any], model: nn.Module, path: Path, num_samples: int):
    """Call the project's exporter, passing the example length if it takes one."""
    params = inspect.signature(export_onnx).parameters
    kwargs: dict[str, Any] = {}
    if "num_samples" in params:
        kwargs["num_samples"] = num_samples
    for name in ("example_input", "dummy_input", "example"):
        if name in params:
            kwargs[name] = torch.randn(1, num_samples)
    export_onnx(model, str(path), **kwargs)


def make_onnx_runner(
    export_onnx: Callable[..., Any],
    model: nn.Module,
    wav: torch.Tensor,
    threads: int,
    path: Path,
) -> Callable[[], Any]:
    """Export ``model`` (if ``path`` does not exist yet) and return a runner on ``wav``.

    Args:
        export_onnx: The project's exporter (see :func:`load_exporter`).
        model: The model, in eval mode.
        wav: The input, (1, time).
        threads: ``intra_op_num_threads`` of the session.
        path: Where the ``.onnx`` file goes (reused when present).

    Returns:
        A zero-argument callable running one inference.

    Raises:
        OnnxUnavailable: if the export or a first test run fails (message says why).
    """
    import onnxruntime as ort

    if not path.is_file():
        try:
            _export(export_onnx, model, path, wav.shape[-1])
        except Exception as err:  # any exporter failure only removes a column
            raise OnnxUnavailable(f"export failed: {type(err).__name__}: {err}") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: wav.numpy()}
    try:
        session.run(None, feed)
    except Exception as err:
        raise OnnxUnavailable(
            f"onnxruntime could not run {path.name} on {wav.shape[-1]} samples: {err}"
        ) from err
    return lambda: session.run(None, feed)
