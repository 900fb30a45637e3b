"""TDANet and TDANet Large as Asteroid models (``BaseEncoderMaskerDecoder``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from asteroid.models.base_models import BaseEncoderMaskerDecoder
from torch import nn

from .inference import resolve_chunking, separate_in_chunks
from .io import plain_software_versions, read_model_package
from .look2hear import (
    POSITION_KEY,
    RELEASED_MODEL_NAME,
    convert_state_dict,
    load_look2hear,
    model_args_from_released,
)
from .masker import TDANetMasker

log = logging.getLogger("asteroid_tdanet")


def _log_released(where: str, legacy: bool) -> None:
    """The one line that says a released checkpoint is being loaded, and in which mode."""
    if legacy:
        log.warning(
            "%s: the authors' released TDANetBest checkpoint; loading it in legacy_look2hear "
            "mode, which reproduces the released code (pass legacy_look2hear=False for the "
            "paper's wiring)",
            where,
        )
    else:
        log.warning(
            "%s: the authors' released TDANetBest checkpoint; loading its weights with the "
            "paper's wiring (legacy_look2hear=False); its outputs differ from the released code",
            where,
        )


def is_tracing() -> bool:
    """Whether the model is being traced, compiled or exported (no data-dependent checks then)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()


def kernel_samples(enc_kernel_ms: float, sample_rate: float) -> int:
    """Encoder kernel length in samples, checked to be a whole number divisible by 4.

    Args:
        enc_kernel_ms: Kernel length in milliseconds.
        sample_rate: Sample rate in Hz.

    Returns:
        The kernel length ``K`` in samples (the stride is ``K // 4``).
    """
    exact = enc_kernel_ms * sample_rate / 1000.0
    kernel = round(exact)
    if abs(exact - kernel) > 1e-6 or kernel < 4 or kernel % 4:
        raise ValueError(
            f"enc_kernel_ms={enc_kernel_ms} at sample_rate={sample_rate} gives a kernel of "
            f"{exact:g} samples; TDANet needs a whole number of samples divisible by 4 "
            "(stride = kernel / 4), e.g. 4 ms or 2 ms at 8 or 16 kHz"
        )
    return kernel


def check_waveform(wav: Any) -> tuple[torch.Tensor, bool]:
    """Validate a mixture and bring it to ``(batch, 1, time)``.

    Args:
        wav: Tensor of shape ``(time,)``, ``(batch, time)`` or ``(batch, 1, time)``.

    Returns:
        The mixture as ``(batch, 1, time)``, and whether the input was 1-D.

    Raises:
        TypeError: Not a tensor, or not floating point.
        ValueError: Empty, multi-channel, more than 3 dimensions, or NaN/Inf samples.
    """
    if not isinstance(wav, torch.Tensor):
        raise TypeError(
            f"TDANet expects a torch.Tensor waveform, got {type(wav).__name__}; use "
            "torch.as_tensor(x, dtype=torch.float32), or model.separate() for arrays and files"
        )
    if not wav.is_floating_point():
        raise TypeError(
            f"TDANet expects a floating-point waveform, got dtype {wav.dtype}; for 16-bit PCM use "
            "wav.float() / 32768"
        )
    if wav.ndim == 0 or wav.ndim > 3:
        raise ValueError(
            f"TDANet expects a waveform of shape (time,), (batch, time) or (batch, 1, time), got "
            f"a {wav.ndim}-D tensor of shape {tuple(wav.shape)}"
        )
    if wav.ndim == 3 and wav.shape[1] != 1:
        raise ValueError(
            f"TDANet separates single-channel mixtures, got {wav.shape[1]} channels (shape "
            f"{tuple(wav.shape)}); downmix first, e.g. wav.mean(dim=1, keepdim=True)"
        )
    if wav.shape[-1] == 0 or wav.numel() == 0:
        raise ValueError(f"TDANet got an empty waveform (shape {tuple(wav.shape)})")
    if not is_tracing() and not bool(torch.isfinite(wav).all()):
        raise ValueError("TDANet got NaN or Inf samples in the input waveform")
    was_1d = wav.ndim == 1
    return wav.reshape(-1, 1, wav.shape[-1]), was_1d


class TDANet(BaseEncoderMaskerDecoder):
    """TDANet: an efficient encoder-decoder separator with top-down attention (ICLR 2023).

    A learned encoder (kernel ``K`` = ``enc_kernel_ms`` at ``sample_rate``, stride ``K/4``,
    ``K/2 + 1`` filters), the :class:`~asteroid_tdanet.masker.TDANetMasker` separator, and one
    transposed convolution that decodes all sources jointly from every source's masked features.
    By default it computes the architecture of the paper; ``legacy_look2hear=True`` reproduces the
    authors' released code (and checkpoints) exactly, item by item. Both modes have the same
    parameters. See :meth:`from_look2hear` to load the released checkpoints.

    Args:
        n_src: Number of sources.
        sample_rate: Sample rate in Hz.
        enc_kernel_ms: Encoder/decoder kernel length in ms (4 for TDANet, 2 for TDANet Large).
        bn_chan: Bottleneck channels ``C`` (128).
        hid_chan: Channels inside the U-block ``N`` (512).
        n_blocks: Applications of the shared U-block ``B`` (16).
        upsampling_depth: Scales in the U-block ``D`` (5).
        n_heads: Attention heads (8).
        dropout: Dropout in global attention (0.1).
        drop_path: Stochastic depth in global attention (0.1).
        legacy_look2hear: Reproduce the released code's two defects (top-down wiring, attention
            axis); the kernel-1 local attention of the coarsest scale
            (``masker.ublock.inject.{D-1}``, released name ``sm.unet.loc_glo_fus.{D-1}``) and the
            attention's query/key projections then receive no gradient.
        checkpoint_blocks: Activation checkpointing of each U-block application while training.

    Shapes:
        ``forward``: ``(time,) -> (n_src, time)``, ``(batch, time)`` or ``(batch, 1, time)`` ->
        ``(batch, n_src, time)``, for any length from one sample.

    References:
        Kai Li, Runxuan Yang, Xiaolin Hu. "An efficient encoder-decoder architecture with top-down
        attention for speech separation". ICLR 2023. https://arxiv.org/abs/2209.15200

    Examples:
        >>> model = TDANet(n_src=2, sample_rate=8000)
        >>> model(torch.randn(1, 8000)).shape
        torch.Size([1, 2, 8000])
    """

    def __init__(
        self,
        n_src: int = 2,
        sample_rate: float = 8000,
        enc_kernel_ms: float = 4.0,
        bn_chan: int = 128,
        hid_chan: int = 512,
        n_blocks: int = 16,
        upsampling_depth: int = 5,
        n_heads: int = 8,
        dropout: float = 0.1,
        drop_path: float = 0.1,
        legacy_look2hear: bool = False,
        checkpoint_blocks: bool = False,
    ) -> None:
        kernel = kernel_samples(enc_kernel_ms, sample_rate)
        stride = kernel // 4
        basis = kernel // 2 + 1
        encoder = nn.Conv1d(1, basis, kernel, stride=stride, padding=kernel // 2, bias=False)
        # One transposed convolution over all sources' features: each output sees every source.
        decoder = nn.ConvTranspose1d(
            n_src * basis, n_src, kernel, stride=stride, padding=kernel // 2, bias=False
        )
        nn.init.xavier_uniform_(encoder.weight)
        nn.init.xavier_uniform_(decoder.weight)
        encoder.sample_rate = float(sample_rate)  # read by Asteroid's BaseModel
        masker = TDANetMasker(
            basis,
            n_src,
            bn_chan,
            hid_chan,
            n_blocks,
            upsampling_depth,
            n_heads,
            dropout,
            drop_path,
            legacy_look2hear,
            checkpoint_blocks,
        )
        super().__init__(encoder, masker, decoder)
        self.n_src = n_src
        self.enc_kernel_ms = float(enc_kernel_ms)
        self.kernel_size = kernel
        self.stride = stride

    @property
    def legacy_look2hear(self) -> bool:
        """Whether the released code's computation is reproduced; may be switched at any time."""
        return self.masker.legacy_look2hear

    @legacy_look2hear.setter
    def legacy_look2hear(self, value: bool) -> None:
        self.masker.legacy_look2hear = value

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Separate mixtures.

        Args:
            wav: Mixture, ``(time,)``, ``(batch, time)`` or ``(batch, 1, time)``, floating point.

        Returns:
            Estimated sources, ``(batch, n_src, time)`` (``(n_src, time)`` for 1-D input).
        """
        wav, was_1d = check_waveform(wav)
        wav = wav.to(self.encoder.weight.dtype)
        length = wav.shape[-1]
        kernel, stride = self.kernel_size, self.stride
        # Pad so that every sample is covered by whole frames, as the released model does.
        rest = kernel - (stride + length % kernel) % kernel
        edge = kernel - stride
        padded = nn.functional.pad(wav, (edge, rest + edge))
        tf_rep = self.forward_encoder(padded)
        masks = self.forward_masker(tf_rep)
        decoded = self.forward_decoder(self.apply_masks(tf_rep, masks))
        estimates = decoded[..., edge : edge + length]
        return estimates[0] if was_1d else estimates

    def forward_wav(
        self,
        wav: torch.Tensor,
        chunk_seconds: float | None = None,
        progress: bool = False,
        overlap_seconds: float | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Separate a recording of any length (what ``separate`` and ``tdanet-separate`` call).

        Recordings longer than ``AUTO_CHUNK_ABOVE_SECONDS`` are separated in chunks of
        ``DEFAULT_CHUNK_SECONDS`` overlapping by ``DEFAULT_OVERLAP_SECONDS`` (all in
        :mod:`asteroid_tdanet.inference`), cross-faded with Hann ramps and with their sources
        aligned, so the network's memory stays bounded for hours of audio; shorter ones are
        separated whole.

        Args:
            wav: Mixture, ``(time,)``, ``(batch, time)`` or ``(batch, 1, time)``.
            chunk_seconds: Chunk length; ``None`` chooses as above, ``0`` never chunks.
            progress: Show a progress bar over chunks.
            overlap_seconds: Overlap of consecutive chunks (at most half a chunk); ``None``:
                ``DEFAULT_OVERLAP_SECONDS``, or half a chunk if that is less.
            **kwargs: Ignored (accepted for Asteroid's ``separate``).

        Returns:
            ``(batch, n_src, time)`` (``(n_src, time)`` for 1-D input).
        """
        if self.training:
            # Asteroid's separate() and asteroid-infer call this on a model straight from
            # from_pretrained, i.e. in training mode: dropout would randomise the estimates.
            self.eval()
            try:
                return self.forward_wav(wav, chunk_seconds, progress, **kwargs)
            finally:
                self.train()
        wav, was_1d = check_waveform(wav)
        chunking = resolve_chunking(wav.shape[-1], self.sample_rate, chunk_seconds, overlap_seconds)
        if chunking is not None:
            chunk_seconds, overlap_seconds = chunking
            estimates = separate_in_chunks(
                self,
                wav,
                n_src=self.n_src,
                sample_rate=self.sample_rate,
                chunk_seconds=chunk_seconds,
                overlap_seconds=overlap_seconds,
                progress=progress,
            )
        else:
            estimates = self(wav)
        return estimates[0] if was_1d else estimates

    def forward_decoder(self, masked_tf_rep: torch.Tensor) -> torch.Tensor:
        """Decode all sources jointly.

        Args:
            masked_tf_rep: ``(batch, n_src, basis, frames)``.

        Returns:
            ``(batch, n_src, samples)``.
        """
        features = masked_tf_rep.flatten(1, 2)
        if (
            features.device.type == "cpu"
            and not is_tracing()
            # The kernel is called directly, past autocast's casts: under autocast (or with
            # weights in another dtype) the module runs, in the dtype autocast chooses.
            and not torch.is_autocast_enabled("cpu")
            and features.dtype == self.decoder.weight.dtype
        ):
            # oneDNN's transposed convolution builds a kernel for each new input length (minutes
            # for minutes of audio) and then runs slower than ATen's own implementation.
            kernel, stride = self.kernel_size, self.stride
            return torch._C._nn.slow_conv_transpose2d(
                features.unsqueeze(2),
                self.decoder.weight.unsqueeze(2),
                (1, kernel),
                None,
                (1, stride),
                (0, kernel // 2),
            ).squeeze(2)
        return self.decoder(features)

    def get_model_args(self) -> dict[str, Any]:
        """Arguments to re-instantiate the model, as plain Python values."""
        config = self.masker.get_config()
        del config["in_chan"]
        return {
            "sample_rate": float(self.sample_rate),
            "enc_kernel_ms": self.enc_kernel_ms,
            **config,
        }

    def serialize(self) -> dict[str, Any]:
        """Asteroid's model package, with only plain values besides tensors.

        Asteroid stores ``torch.__version__`` as a ``TorchVersion`` object, which
        ``torch.load(..., weights_only=True)`` (the default since torch 2.6) refuses.
        """
        package = super().serialize()
        package["infos"]["software_versions"] = plain_software_versions(
            package["infos"]["software_versions"]
        )
        return package

    @classmethod
    def from_pretrained(cls, pretrained_model_conf_or_path: str | Path | dict, *args, **kwargs):
        """Load a model from any model file, package, folder or hub id: one loader for all.

        What it holds decides: an Asteroid model package (ours, or any registered Asteroid
        model's, whose class is then returned), or the authors' released ``TDANetBest`` package,
        which is loaded in ``legacy_look2hear`` mode (it reproduces the released code) with one
        log line saying so. Files are read with ``weights_only=True`` (no pickled code runs).

        Args:
            pretrained_model_conf_or_path: A package dict; a local file; a folder holding
                ``pytorch_model.bin`` (or ``model.pth``); a Hugging Face hub id such as
                ``"user/TDANet_Libri2Mix_sepclean"`` or ``"JusperLee/TDANetBest-4ms-LRS2"``
                (``@revision`` allowed), or a URL (both fetched into Asteroid's cache,
                ``$ASTEROID_CACHE``, as Asteroid's own ``from_pretrained`` does).
            *args: Passed to the model's constructor.
            **kwargs: Override model arguments (e.g. ``legacy_look2hear=False`` for a released
                checkpoint with the paper's wiring).

        Returns:
            The model (released checkpoints: in eval mode, as :meth:`from_look2hear`).

        Raises:
            FileNotFoundError: Neither a local file or folder nor a reachable hub repo.
            ValueError: The file holds something else (the message names what it found).
        """
        package, where = read_model_package(pretrained_model_conf_or_path)
        if package["model_name"] == RELEASED_MODEL_NAME:
            legacy = kwargs.pop("legacy_look2hear", True)
            _log_released(where, legacy)
            if args:
                raise TypeError("a released checkpoint takes model arguments by keyword only")
            model_class = TDANet if cls is TDANetBest else cls
            return load_look2hear(
                package, model_class=model_class, legacy_look2hear=legacy, **kwargs
            )
        return super().from_pretrained(package, *args, **kwargs)

    @classmethod
    def from_look2hear(
        cls, checkpoint: str | Path | dict, *, legacy_look2hear: bool = True, **kwargs: Any
    ) -> TDANet:
        """Load one of the authors' released checkpoints (``TDANetBest``, "Look2Hear" layout).

        Args:
            checkpoint: Path to ``pytorch_model.bin``, the dict it holds, or a Hugging Face repo id
                such as ``"JusperLee/TDANetBest-4ms-LRS2"`` (downloaded with ``huggingface_hub``
                when the path does not exist locally).
            legacy_look2hear: ``True`` (default) reproduces the released code exactly;
                ``False`` runs the same weights with the paper's wiring and attention.
            **kwargs: Extra model arguments (e.g. ``dropout``, ``checkpoint_blocks``).

        Returns:
            The model, in eval mode.
        """
        from .look2hear import load_look2hear

        return load_look2hear(
            checkpoint, model_class=cls, legacy_look2hear=legacy_look2hear, **kwargs
        )


class TDANetLarge(TDANet):
    """TDANet Large: TDANet with a 2 ms encoder kernel (0.5 ms stride).

    Same arguments as :class:`TDANet`, with ``enc_kernel_ms=2.0`` by default.
    """

    def __init__(
        self, n_src: int = 2, sample_rate: float = 8000, enc_kernel_ms: float = 2.0, **kwargs: Any
    ) -> None:
        super().__init__(
            n_src=n_src, sample_rate=sample_rate, enc_kernel_ms=enc_kernel_ms, **kwargs
        )


class TDANetBest(TDANet):
    """The authors' released checkpoint format under its own model name, in legacy mode.

    Released files (Hugging Face ``JusperLee/TDANetBest-*``, ``pytorch_model.bin``) are Asteroid
    packages with ``model_name="TDANetBest"``, the authors' argument names and their state-dict
    keys. Registering this class under that name lets code that never imports this package
    load them: Asteroid's ``BaseModel.from_pretrained``, ``asteroid-infer`` and ESPnet's
    ``separator: asteroid``. It is a :class:`TDANet` with ``legacy_look2hear=True``; it
    accepts released (or our) state-dict keys and serializes as a plain ``TDANet`` file.

    Args:
        out_channels: Bottleneck channels (our ``bn_chan``).
        in_channels: U-block channels (our ``hid_chan``).
        num_blocks: U-block applications (``n_blocks``).
        upsampling_depth: Scales in the U-block.
        enc_kernel_size: Encoder kernel in ms (``enc_kernel_ms``).
        num_sources: Number of sources (``n_src``).
        sample_rate: Sample rate in Hz.
        legacy_look2hear: Reproduce the released code (default); ``False``: the paper's wiring.
        **kwargs: Other :class:`TDANet` arguments (``n_heads``, ``dropout``, ...).
    """

    def __init__(
        self,
        out_channels: int = 128,
        in_channels: int = 512,
        num_blocks: int = 16,
        upsampling_depth: int = 5,
        enc_kernel_size: float = 4,
        num_sources: int = 2,
        sample_rate: float = 16000,
        legacy_look2hear: bool = True,
        **kwargs: Any,
    ) -> None:
        released = {
            "out_channels": out_channels,
            "in_channels": in_channels,
            "num_blocks": num_blocks,
            "upsampling_depth": upsampling_depth,
            "enc_kernel_size": enc_kernel_size,
            "num_sources": num_sources,
            "sample_rate": sample_rate,
        }
        _log_released("model_name 'TDANetBest'", legacy_look2hear)
        super().__init__(
            legacy_look2hear=legacy_look2hear, **model_args_from_released(released), **kwargs
        )

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign=False):
        """Load released (``sm.unet...``) or our state-dict keys."""
        if POSITION_KEY in state_dict or any(k.startswith("sm.") for k in state_dict):
            state_dict = convert_state_dict(state_dict, self, "TDANetBest state_dict")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def serialize(self) -> dict[str, Any]:
        """A plain ``TDANet`` package (our argument names and keys, ``legacy_look2hear=True``)."""
        package = super().serialize()
        package["model_name"] = TDANet.__name__
        return package
