"""Command lines: ``tdanet-convert`` (released checkpoint -> model file) and ``tdanet-separate``."""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from .inference import (
    AUTO_CHUNK_ABOVE_SECONDS,
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP_SECONDS,
    ChunkPlan,
    chunk_bar,
    resolve_chunking,
    stream_separate,
)
from .resample import StreamingResampler

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
log = logging.getLogger("asteroid_tdanet")
# Input read (and output rescaled) per step: memory is a few blocks whatever the file length.
READ_BLOCK_SECONDS = 4


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


def mono_blocks(path: Path, block_frames: int) -> Iterator[np.ndarray]:
    """``path``'s samples as consecutive float32 mono blocks (channels averaged)."""
    with sf.SoundFile(path) as audio:
        if audio.channels > 1:
            log.warning("%s has %d channels: separating their average", path, audio.channels)
        for block in audio.blocks(block_frames, dtype="float32", always_2d=True):
            yield np.ascontiguousarray(block.mean(axis=1, dtype=np.float32))


def resampled_length(length: int, orig_rate: int, new_rate: int) -> int:
    """Samples that resampling ``length`` samples gives (as torchaudio's ``resample``)."""
    gcd = math.gcd(orig_rate, new_rate)
    return -(-length * (new_rate // gcd) // (orig_rate // gcd))


def read_mono(path: Path, sample_rate: float) -> tuple[torch.Tensor, int]:
    """Read ``path`` as a mono float32 tensor at ``sample_rate``; also return the file's rate."""
    file_rate = sf.info(str(path)).samplerate
    resampler = StreamingResampler(file_rate, int(sample_rate))
    parts = [resampler.push(torch.from_numpy(b)) for b in mono_blocks(path, 1 << 16)]
    if not parts:
        raise ValueError(f"{path} holds no audio samples")
    return torch.cat([*parts, resampler.flush()]), file_rate


def check_chunk_options(chunk_seconds: float | None, overlap_seconds: float | None) -> None:
    """Refuse chunk options that cannot work (``ValueError`` naming the option)."""
    if chunk_seconds is not None and not chunk_seconds >= 0:
        raise ValueError(f"--chunk-seconds must be >= 0 (0 = never chunk), got {chunk_seconds}")
    if overlap_seconds is not None and not overlap_seconds > 0:
        raise ValueError(f"--overlap-seconds must be > 0, got {overlap_seconds}")
    if chunk_seconds and overlap_seconds is not None and overlap_seconds > chunk_seconds / 2:
        raise ValueError(
            f"--overlap-seconds {overlap_seconds:g} is more than half of --chunk-seconds "
            f"{chunk_seconds:g}"
        )


def chunk_plan(
    length: int, sample_rate: int, chunk_seconds: float | None, overlap_seconds: float | None
) -> ChunkPlan:
    """The chunks of a file of ``length`` samples (one chunk: separated whole).

    See :func:`asteroid_tdanet.inference.resolve_chunking` for the options.
    """
    check_chunk_options(chunk_seconds, overlap_seconds)
    chunking = resolve_chunking(length, sample_rate, chunk_seconds, overlap_seconds)
    if chunking is None:
        return ChunkPlan(window=max(length, 2), overlap=1)
    return ChunkPlan.from_seconds(*chunking, sample_rate)


def separate_file(
    model,
    path: Path,
    out_dir: Path | None,
    *,
    chunk_seconds: float | None,
    overlap_seconds: float | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Separate one file into ``<out_dir>/<stem>_est<k>.wav`` at the file's own sample rate.

    The file is streamed: read in blocks, resampled block by block, separated chunk by chunk
    (:func:`asteroid_tdanet.inference.stream_separate`) and written as it goes, so memory does
    not grow with its length. Like Asteroid's ``separate``, the estimates are scaled so that
    their summed magnitude equals the mixture's; that factor is known only at the end, so a
    second pass over temporary files applies it. Outputs appear only when complete.

    Args:
        model: Any separation model mapping ``(batch, 1, time)`` to ``(batch, n_src, time)``.
        path: Input audio file.
        out_dir: Output folder (default: beside the input).
        chunk_seconds: See :func:`chunk_plan`.
        overlap_seconds: See :func:`chunk_plan`.
        force: Overwrite existing outputs.
        progress: Show a progress bar over chunks.

    Returns:
        The written files, one per source.
    """
    target_dir = out_dir if out_dir is not None else path.parent
    n_src = getattr(model, "n_src", None) or model.masker.n_src
    outputs = [target_dir / f"{path.stem}_est{k}.wav" for k in range(1, n_src + 1)]
    if not force and any(p.exists() for p in outputs):
        raise FileExistsError(f"{outputs[0]} exists; pass --force to overwrite")
    info = sf.info(str(path))
    if info.frames <= 0:
        raise ValueError(f"{path} holds no audio samples")
    file_rate, model_rate = int(info.samplerate), int(model.sample_rate)
    plan = chunk_plan(
        resampled_length(info.frames, file_rate, model_rate),
        model_rate,
        chunk_seconds,
        overlap_seconds,
    )
    device = next(model.parameters()).device
    target_dir.mkdir(parents=True, exist_ok=True)
    unscaled = [p.with_name(f".{p.name}.unscaled.tmp") for p in outputs]
    partial = [p.with_name(f".{p.name}.partial.tmp") for p in outputs]
    try:
        scale = _separate_unscaled(
            model, path, plan, unscaled, file_rate, model_rate, device, progress
        )
        for src, tmp, out in zip(unscaled, partial, outputs, strict=True):
            _write_scaled(src, tmp, scale, file_rate)
            tmp.replace(out)
    finally:
        for tmp in (*unscaled, *partial):
            tmp.unlink(missing_ok=True)
    return outputs


def _separate_unscaled(
    model, path, plan, unscaled, file_rate, model_rate, device, progress
) -> float:
    """Pass 1: separate ``path`` into float files; return Asteroid's output scale factor."""
    in_resampler = StreamingResampler(file_rate, model_rate)
    out_resampler = StreamingResampler(model_rate, file_rate)
    l1_mix = 0.0
    l1_est = 0.0

    def mixture_blocks() -> Iterator[torch.Tensor]:
        nonlocal l1_mix
        parts = (
            in_resampler.push(torch.from_numpy(b))
            for b in mono_blocks(path, READ_BLOCK_SECONDS * file_rate)
        )
        for part in itertools.chain(parts, [None]):
            part = in_resampler.flush() if part is None else part  # the input's end
            l1_mix += float(part.abs().sum(dtype=torch.float64))
            yield part[None].to(device)

    writers = [
        sf.SoundFile(p, "w", samplerate=file_rate, channels=1, format="WAV", subtype="FLOAT")
        for p in unscaled
    ]
    n_frames = sf.info(str(path)).frames
    written = 0

    def write(rows: torch.Tensor) -> int:
        # Resampling there and back can add a sample at the end: outputs match the input's length.
        rows = rows[:, : n_frames - written]
        for writer, row in zip(writers, rows, strict=True):
            writer.write(row.numpy())
        return rows.shape[-1]

    try:
        n_samples = resampled_length(n_frames, file_rate, model_rate)
        with torch.inference_mode(), chunk_bar(plan.n_chunks(n_samples), progress) as bar:
            pieces = stream_separate(
                model, mixture_blocks(), n_src=len(unscaled), plan=plan, bar=bar
            )
            for piece in pieces:
                piece = piece[0].float().cpu()
                l1_est += float(piece.abs().sum(dtype=torch.float64))
                written += write(out_resampler.push(piece))
            write(out_resampler.flush())
    finally:
        for writer in writers:
            writer.close()
    return l1_mix / l1_est if l1_est > 0 else 1.0


def _write_scaled(src: Path, dst: Path, scale: float, rate: int) -> None:
    """Pass 2: ``dst`` = ``src`` x ``scale`` as 16-bit PCM; warns about clipped samples."""
    clipped = 0
    with (
        sf.SoundFile(src) as reader,
        sf.SoundFile(dst, "w", samplerate=rate, channels=1, format="WAV") as writer,
    ):
        for block in reader.blocks(READ_BLOCK_SECONDS * rate, dtype="float32"):
            block *= scale
            clipped += int(np.count_nonzero(np.abs(block) > 1.0))
            writer.write(block)
    if clipped:
        log.warning(
            "%s: %d samples beyond full scale were clipped in the 16-bit output",
            dst.name.removeprefix(".").removesuffix(".partial.tmp"),
            clipped,
        )


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
        help=f"chunk length in seconds (default: files over {AUTO_CHUNK_ABOVE_SECONDS:g} s are "
        f"separated in {DEFAULT_CHUNK_SECONDS:g} s chunks, shorter ones whole; 0 = never chunk)",
    )
    parser.add_argument(
        "--overlap-seconds",
        type=float,
        default=None,
        help=f"overlap of consecutive chunks, cross-faded (default {DEFAULT_OVERLAP_SECONDS:g} s, "
        "at most half a chunk)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    from . import register_models
    from .runtime import configure_cpu_process

    register_models()
    configure_cpu_process()
    try:
        check_chunk_options(args.chunk_seconds, args.overlap_seconds)
        files = find_audio(args.inputs)
        model = load_any_model(args.model, args.device).eval()
    except (ValueError, FileNotFoundError, ImportError) as err:
        return _fail(str(err))
    written = 0
    for path in tqdm(files, unit="file", desc="files", disable=len(files) < 2):
        try:
            outputs = separate_file(
                model,
                path,
                args.out_dir,
                chunk_seconds=args.chunk_seconds,
                overlap_seconds=args.overlap_seconds,
                force=args.force,
            )
        except (FileExistsError, RuntimeError, ValueError, sf.LibsndfileError) as err:
            return _fail(f"{path}: {err}")
        written += len(outputs)
        log.info("%s -> %s", path, ", ".join(str(p) for p in outputs))
    print(f"separated {len(files)} file(s) into {written} estimate(s)")
    return 0


def separate_entry() -> None:
    """``tdanet-separate``: :func:`separate_main`, then an exit without interpreter teardown.

    Python's teardown of torch (destroying its modules and registrations) touches about 110 MB
    of memory that the separation never used (measured: ``python -c "import torch"`` peaks at
    0.80 GB resident instead of 0.67 GB while running), and the peak resident memory of the
    command is what users of long recordings budget for. Every output file is closed by then, so
    the command flushes its streams and logs and leaves with ``os._exit``.
    """
    import os

    try:
        status = separate_main()
    except SystemExit as stop:  # argparse's --help and usage errors
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
