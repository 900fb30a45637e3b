"""Deployment: ONNX export with dynamic batch and length."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)
MAX_SAMPLES = 2**31 - 1


def export_onnx(
    model: torch.nn.Module,
    path: str | Path,
    *,
    example_seconds: float = 1.0,
    opset: int | None = None,
) -> Path:
    """Export a TDANet to ONNX; the graph accepts any batch size and length.

    The exported graph maps ``mixture`` ``(batch, time)`` float32 to ``sources``
    ``(batch, n_src, time)``, for ``time`` of at least one encoder kernel (4 ms for TDANet; pad
    shorter inputs with zeros). It needs ``onnxscript`` (``pip install 'asteroid-tdanet[bench]'``).

    Args:
        model: The model (exported in eval mode, on CPU).
        path: Output ``.onnx`` file (weights embedded).
        example_seconds: Length of the example input used for tracing.
        opset: ONNX opset (torch's default when ``None``).

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = torch.randn(1, max(64, int(example_seconds * model.sample_rate)))
    # Below one kernel the frame arithmetic takes other branches than the traced ones.
    time = torch.export.Dim("time", min=model.kernel_size, max=MAX_SAMPLES)
    dims = {0: torch.export.Dim("batch", max=4096), 1: time}
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=["mixture"],
            output_names=["sources"],
            dynamic_shapes=(dims,),
            opset_version=opset,
            external_data=False,
        )
    program.save(str(path))
    log.info("wrote %s", path)
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session for an exported model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_main(argv=None) -> int:
    """``tdanet-export MODEL OUT.onnx``: a model file (or released checkpoint) to ONNX."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="tdanet-export",
        description="Export a TDANet model file or released checkpoint to ONNX (dynamic batch "
        "and length) and check onnxruntime against torch on a random input.",
    )
    parser.add_argument("model", help="model file (.pth), released pytorch_model.bin, or repo id")
    parser.add_argument("out", type=Path, help="output .onnx file")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from .cli import load_any_model

    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; pass --force to overwrite it")
        return 2
    model = load_any_model(args.model)
    export_onnx(model, args.out)
    mix = torch.randn(1, int(model.sample_rate * 1.5))
    with torch.no_grad():
        expected = model(mix).numpy()
    got = onnx_session(args.out).run(None, {"mixture": mix.numpy()})[0]
    error = float(abs(got - expected).max() / max(abs(expected).max(), 1e-12))
    print(f"wrote {args.out}; onnxruntime vs torch on 1.5 s: max error {error:.2e} of the scale")
    return 0
