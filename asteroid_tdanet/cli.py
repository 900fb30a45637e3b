"""Command lines: ``tdanet-convert`` (released checkpoint -> model file) and ``tdanet-separate``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
log = logging.getLogger("asteroid_tdanet")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def convert_main(argv: Sequence[str] | None = None) -> int:
    """``tdanet-convert RELEASED OUT [--paper] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="tdanet-convert",
        description="Convert one of the authors' released TDANetBest checkpoints "
        "(pytorch_model.bin) into an Asteroid model file usable with TDANet.from_pretrained, "
        "tdanet-separate and the recipes.",
    )
    parser.add_argument("released", help="pytorch_model.bin, its folder, or a Hugging Face repo id")
    parser.add_argument("out", type=Path, help="output model file (.pth)")
    parser.add_argument(
        "--paper",
        action="store_true",
        help="use the paper's wiring and attention instead of reproducing the "
        "released code (same weights, different outputs)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = parser.parse_args(argv)

    from .io import save_model_file
    from .models import TDANet

    if args.out.exists() and not args.force:
        return _fail(f"{args.out} exists; pass --force to overwrite it")
    try:
        model = TDANet.from_look2hear(args.released, legacy_look2hear=not args.paper)
    except (ValueError, FileNotFoundError, ImportError) as err:
        return _fail(str(err))
    save_model_file(model, args.out)
    mode = "paper" if args.paper else "legacy_look2hear (reproduces the released code)"
    params = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {args.out}: TDANet, {params:,} parameters, {model.sample_rate:g} Hz, "
        f"{model.enc_kernel_ms:g} ms kernel, mode {mode}"
    )
    return 0


def load_any_model(spec: str, device: str = "cpu"):
    """A model from any model file, folder, or hub id, decided by what it holds.

    Asteroid packages (ours or any registered model's), and the authors' released TDANetBest
    packages (legacy mode, logged), from a local file, a folder, or a Hugging Face hub id (ours
    or ``JusperLee/TDANetBest-*``). Anything else raises a ValueError naming what was found.
    """
    from .io import load_model

    return load_model(spec).to(device)


def find_audio(inputs: Iterable[str]) -> list[Path]:
    """Audio files named in ``inputs`` (folders searched recursively), in a stable order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def read_mono(path: Path, sample_rate: float) -> tuple[torch.Tensor, int]:
    """Read ``path`` as a mono float32 tensor at ``sample_rate``; also return the file's rate."""
    audio, file_rate = sf.read(path, dtype="float32", always_2d=True)
    if audio.shape[1] > 1:
        log.warning("%s has %d channels: separating their average", path, audio.shape[1])
    mono = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=1)))
    if file_rate != sample_rate:
        import torchaudio.functional as AF

        mono = AF.resample(mono, file_rate, int(sample_rate))
    return mono, file_rate


def separate_file(
    model, path: Path, out_dir: Path | None, *, chunk_seconds: float | None, force: bool = False
) -> list[Path]:
    """Separate one file into ``<out_dir>/<stem>_est<k>.wav`` at the file's own sample rate."""
    from asteroid.separate import torch_separate

    from .models import TDANet

    target_dir = out_dir if out_dir is not None else path.parent
    n_src = getattr(model, "n_src", None) or model.masker.n_src
    outputs = [target_dir / f"{path.stem}_est{k}.wav" for k in range(1, n_src + 1)]
    if not force and any(p.exists() for p in outputs):
        raise FileExistsError(f"{outputs[0]} exists; pass --force to overwrite")
    mix, file_rate = read_mono(path, model.sample_rate)
    device = next(model.parameters()).device
    # Only our models know chunking; others get Asteroid's plain forward_wav.
    options = (
        {"chunk_seconds": chunk_seconds, "progress": True} if isinstance(model, TDANet) else {}
    )
    estimates = torch_separate(model, mix[None, None].to(device), **options)[0].cpu()
    if file_rate != model.sample_rate:
        import torchaudio.functional as AF

        estimates = AF.resample(estimates, int(model.sample_rate), file_rate)
    target_dir.mkdir(parents=True, exist_ok=True)
    for out, est in zip(outputs, estimates, strict=True):
        sf.write(out, est.numpy(), file_rate)
    return outputs


def separate_main(argv: Sequence[str] | None = None) -> int:
    """``tdanet-separate MODEL FILE_OR_DIR... [--out-dir D] [--device cuda]``."""
    parser = argparse.ArgumentParser(
        prog="tdanet-separate",
        description="Separate audio files with a TDANet (or any Asteroid) model. Files at another "
        "sample rate are resampled; multi-channel files are averaged; long files are separated "
        "in overlapping chunks with bounded memory.",
    )
    parser.add_argument(
        "model",
        help="a model file (best_model.pth, tdanet-convert output, a released "
        "pytorch_model.bin), a folder holding one, or a Hugging Face hub id (a published "
        "recipe model, or JusperLee/TDANetBest-4ms-LRS2): what it holds decides how it loads",
    )
    parser.add_argument("inputs", nargs="+", help="audio files or folders")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where to write <name>_est<k>.wav (default: beside each input)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=None,
        help="chunk length for long files (default: chunk files over 60 s into "
        "30 s chunks; 0 = never chunk)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    from . import register_models
    from .runtime import flush_denormals

    register_models()
    flush_denormals()
    try:
        files = find_audio(args.inputs)
        model = load_any_model(args.model, args.device)
    except (ValueError, FileNotFoundError, ImportError) as err:
        return _fail(str(err))
    written = 0
    for path in tqdm(files, unit="file", desc="files", disable=len(files) < 2):
        try:
            outputs = separate_file(
                model, path, args.out_dir, chunk_seconds=args.chunk_seconds, force=args.force
            )
        except (FileExistsError, RuntimeError, ValueError, sf.LibsndfileError) as err:
            return _fail(f"{path}: {err}")
        written += len(outputs)
        log.info("%s -> %s", path, ", ".join(str(p) for p in outputs))
    print(f"separated {len(files)} file(s) into {written} estimate(s)")
    return 0
