"""Sepformer (Subakan et al., ICASSP 2021) as an Asteroid model: the baseline of the benchmark.

The network is SpeechBrain's: ``speechbrain.lobes.models.dual_path`` ``Encoder``,
``Dual_Path_Model`` with two ``SBTransformerBlock`` s, and ``Decoder``, assembled as SpeechBrain's
separation recipe does. The defaults are the hyper-parameters of SpeechBrain's WSJ0-2mix recipe
(``recipes/WSJ0Mix/separation/hparams/sepformer.yaml``), about 25.7 M parameters.

SpeechBrain is an optional dependency: this module imports without it, and building a
:class:`Sepformer` raises an :class:`ImportError` that says how to install it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from asteroid.models.base_models import BaseModel

__all__ = ["Sepformer"]

_INSTALL_HINT = (
    "Sepformer needs SpeechBrain: pip install 'asteroid-tdanet[sepformer]' "
    "(or pip install 'speechbrain>=1.0,<2')"
)


class Sepformer(BaseModel):
    """SpeechBrain's Sepformer with an Asteroid interface: (batch, time) -> (batch, n_src, time).

    Args:
        n_src: Number of sources (SpeechBrain's ``num_spks``).
        sample_rate: Sample rate in Hz (the WSJ0-2mix recipe uses 8000).
        n_filters: Encoder channels (``N_encoder_out``), also the transformer width.
        kernel_size: Encoder/decoder kernel in samples.
        stride: Decoder stride in samples. SpeechBrain's encoder always uses
            ``kernel_size // 2``, so ``stride`` must equal it.
        chunk_size: Chunk length ``K`` of the dual-path segmentation.
        n_repeats: Number of dual (intra + inter) blocks (``num_layers`` of Dual_Path_Model).
        n_layers: Transformer layers in each intra and each inter block.
        n_heads: Attention heads.
        d_ffn: Feed-forward width.
        dropout: Dropout in the transformer layers.
        norm: Dual_Path_Model norm (``"ln"`` in the recipe).
        skip_around_intra: Extra skip connection around the intra block.
        linear_layer_after_inter_intra: Linear layer after the inter and intra blocks.
        use_positional_encoding: Sinusoidal positions in the intra and inter blocks.
        norm_before: Pre-norm transformer layers.

    Raises:
        ImportError: if SpeechBrain is not installed (the message says how to install it).

    References:
        Subakan, Ravanelli, Cornell, Bronzi, Zhong, "Attention is all you need in speech
        separation", ICASSP 2021. SpeechBrain, https://speechbrain.github.io.

    Examples:
        >>> model = Sepformer(n_src=2, sample_rate=8000)  # doctest: +SKIP
        >>> model(torch.randn(1, 8000)).shape  # doctest: +SKIP
        torch.Size([1, 2, 8000])
    """

    def __init__(
        self,
        n_src: int = 2,
        sample_rate: float = 8000,
        n_filters: int = 256,
        kernel_size: int = 16,
        stride: int = 8,
        chunk_size: int = 250,
        n_repeats: int = 2,
        n_layers: int = 8,
        n_heads: int = 8,
        d_ffn: int = 1024,
        dropout: float = 0.0,
        norm: str = "ln",
        skip_around_intra: bool = True,
        linear_layer_after_inter_intra: bool = False,
        use_positional_encoding: bool = True,
        norm_before: bool = True,
    ) -> None:
        try:
            from speechbrain.lobes.models import dual_path
        except ImportError as err:
            raise ImportError(_INSTALL_HINT) from err
        super().__init__(sample_rate=sample_rate, in_channels=1)
        if stride != kernel_size // 2:
            raise ValueError(
                f"SpeechBrain's encoder uses stride kernel_size // 2 = {kernel_size // 2}; "
                f"got stride={stride}"
            )
        self.n_src = n_src
        self._args = dict(
            n_src=int(n_src),
            sample_rate=float(sample_rate),
            n_filters=int(n_filters),
            kernel_size=int(kernel_size),
            stride=int(stride),
            chunk_size=int(chunk_size),
            n_repeats=int(n_repeats),
            n_layers=int(n_layers),
            n_heads=int(n_heads),
            d_ffn=int(d_ffn),
            dropout=float(dropout),
            norm=str(norm),
            skip_around_intra=bool(skip_around_intra),
            linear_layer_after_inter_intra=bool(linear_layer_after_inter_intra),
            use_positional_encoding=bool(use_positional_encoding),
            norm_before=bool(norm_before),
        )

        def transformer() -> torch.nn.Module:
            return dual_path.SBTransformerBlock(
                num_layers=n_layers,
                d_model=n_filters,
                nhead=n_heads,
                d_ffn=d_ffn,
                dropout=dropout,
                use_positional_encoding=use_positional_encoding,
                norm_before=norm_before,
            )

        self.encoder = dual_path.Encoder(kernel_size=kernel_size, out_channels=n_filters)
        self.masker = dual_path.Dual_Path_Model(
            in_channels=n_filters,
            out_channels=n_filters,
            intra_model=transformer(),
            inter_model=transformer(),
            num_layers=n_repeats,
            norm=norm,
            K=chunk_size,
            num_spks=n_src,
            skip_around_intra=skip_around_intra,
            linear_layer_after_inter_intra=linear_layer_after_inter_intra,
        )
        self.decoder = dual_path.Decoder(
            in_channels=n_filters,
            out_channels=1,
            kernel_size=kernel_size,
            stride=stride,
            bias=False,
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Separate a mixture.

        Args:
            wav: Mixture, (batch, time), (time,) or (batch, 1, time).

        Returns:
            Estimated sources, (batch, n_src, time) (batch dim kept as given: (n_src, time)
            for a 1-D input), padded or trimmed to the input length.
        """
        one_d = wav.dim() == 1
        if one_d:
            wav = wav[None]
        if wav.dim() == 3 and wav.shape[1] == 1:
            wav = wav[:, 0]
        if wav.dim() != 2:
            raise ValueError(
                f"Sepformer expects (batch, time), (time,) or (batch, 1, time); "
                f"got shape {tuple(wav.shape)}"
            )
        batch, length = wav.shape
        feats = self.encoder(wav)  # (batch, n_filters, frames)
        masks = self.masker(feats)  # (n_src, batch, n_filters, frames)
        masked = (masks * feats[None]).flatten(0, 1)  # (n_src * batch, n_filters, frames)
        # SpeechBrain's decoder squeezes its output; restore (n_src, batch, time) explicitly.
        est = self.decoder(masked).reshape(self.n_src, batch, -1).transpose(0, 1)
        if est.shape[-1] < length:
            est = F.pad(est, (0, length - est.shape[-1]))
        est = est[..., :length]
        return est[0] if one_d else est

    def get_model_args(self) -> dict[str, Any]:
        """Constructor arguments as plain Python values (safe for ``weights_only`` loading)."""
        return dict(self._args)

    def serialize(self) -> dict[str, Any]:
        """Asteroid's model package, with version strings stored as plain ``str``.

        Asteroid stores ``torch.__version__`` (a ``TorchVersion``), which ``torch.load`` with
        ``weights_only=True`` refuses; plain strings load everywhere.
        """
        package = super().serialize()
        versions = package.get("infos", {}).get("software_versions", {})
        for key, value in list(versions.items()):
            versions[key] = str(value)
        return package
