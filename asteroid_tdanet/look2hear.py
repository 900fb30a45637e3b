"""The authors' released checkpoint format ("Look2Hear" ``TDANetBest``): checks and key mapping.

A released file is a ``torch.save`` of ``{"model_name": "TDANetBest", "model_args": {...},
"state_dict": {...}}`` with 137 state-dict entries, among them a (1, 10000, N) positional table
that we recompute instead of storing. :func:`load_look2hear` validates such a file and builds our
model from it; :func:`to_look2hear` writes our model back in that layout.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .layers import sinusoidal_positions

RELEASED_MODEL_NAME = "TDANetBest"
RELEASED_ARGS = (
    "out_channels",
    "in_channels",
    "num_blocks",
    "upsampling_depth",
    "enc_kernel_size",
    "num_sources",
    "sample_rate",
)
POSITION_KEY = "sm.unet.globalatt.attn.pos_enc.pe"
RELEASED_POSITIONS = 10000
HUB_FILENAME = "pytorch_model.bin"

# Module prefixes, released -> ours (first match wins).
_PREFIXES = (
    ("ln.", "masker.in_norm."),
    ("bottleneck.", "masker.bottleneck."),
    ("sm.unet.proj_1x1.", "masker.ublock.proj_in."),
    ("sm.unet.spp_dw.", "masker.ublock.down."),
    ("sm.unet.loc_glo_fus.", "masker.ublock.inject."),
    ("sm.unet.last_layer.", "masker.ublock.fuse."),
    ("sm.unet.res_conv.", "masker.ublock.proj_out."),
    ("sm.unet.globalatt.attn.attn_in_norm.", "masker.ublock.global_attn.mhsa.in_norm."),
    ("sm.unet.globalatt.attn.attn.", "masker.ublock.global_attn.mhsa.attn."),
    ("sm.unet.globalatt.attn.norm.", "masker.ublock.global_attn.mhsa.out_norm."),
    ("sm.unet.globalatt.mlp.", "masker.ublock.global_attn.ffn."),
    ("sm.concat_block.", "masker.recur_in."),
    ("mask_net.", "masker.mask_net."),
    ("encoder.", "encoder."),
    ("decoder.", "decoder."),
)
# Inner names, released -> ours.
_NAMES = (
    (".local_embedding.", ".local."),
    (".global_act.", ".gate."),
    (".global_embedding.", ".value."),
)
_NORM_PARAMS = {"gamma": "weight", "beta": "bias"}


def released_to_ours(key: str) -> str | None:
    """Our state-dict key for a released key (``None`` if the released key is unknown)."""
    for theirs, ours in _PREFIXES:
        if key.startswith(theirs):
            key = ours + key[len(theirs) :]
            break
    else:
        return None
    for theirs, ours in _NAMES:
        key = key.replace(theirs, ours)
    head, _, last = key.rpartition(".")
    return f"{head}.{_NORM_PARAMS.get(last, last)}"


def ours_to_released(key: str, norm_keys: set[str]) -> str:
    """The released key for one of ours; ``norm_keys`` are our gLN parameter names."""
    is_norm = key in norm_keys
    for theirs, ours in _PREFIXES:
        if key.startswith(ours):
            key = theirs + key[len(ours) :]
            break
    for theirs, ours in _NAMES:
        key = key.replace(ours, theirs)
    if is_norm:
        key = re.sub(r"\.weight$", ".gamma", key)
        key = re.sub(r"\.bias$", ".beta", key)
    return key


def _read(checkpoint: str | Path | Mapping) -> tuple[Mapping, str]:
    if isinstance(checkpoint, Mapping):
        return checkpoint, "the given checkpoint dict"
    path = Path(checkpoint)
    if not path.exists():
        if isinstance(checkpoint, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", checkpoint):
            path = _download(checkpoint)
        else:
            raise FileNotFoundError(f"released checkpoint not found: {path}")
    if path.is_dir():
        path = path / HUB_FILENAME
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} is not a readable TDANetBest checkpoint: torch.load(weights_only=True) "
            f"failed ({err})"
        ) from err
    return package, str(path)


def _download(repo_id: str) -> Path:
    # Asteroid's cache and fetcher, as for every other hub model (see asteroid_tdanet.io).
    from .io import resolve_model_source

    return resolve_model_source(repo_id)


def _check_package(package: Any, where: str) -> tuple[dict[str, Any], Mapping[str, torch.Tensor]]:
    if not isinstance(package, Mapping) or "state_dict" not in package:
        raise ValueError(
            f"{where} is not a TDANetBest checkpoint: expected a dict with 'model_name', "
            f"'model_args' and 'state_dict', got "
            f"{sorted(package) if isinstance(package, Mapping) else type(package).__name__}"
        )
    name = package.get("model_name")
    if name != RELEASED_MODEL_NAME:
        raise ValueError(f"{where} holds model_name={name!r}, not {RELEASED_MODEL_NAME!r}")
    args = package.get("model_args")
    if not isinstance(args, Mapping):
        raise ValueError(f"{where} has no 'model_args' dict")
    missing = [key for key in RELEASED_ARGS if key not in args]
    if missing:
        raise ValueError(f"{where}: model_args lacks {missing}")
    return dict(args), package["state_dict"]


def model_args_from_released(args: Mapping[str, Any]) -> dict[str, Any]:
    """Our model arguments for a released ``model_args`` dict."""
    return {
        "n_src": int(args["num_sources"]),
        "sample_rate": float(args["sample_rate"]),
        "enc_kernel_ms": float(args["enc_kernel_size"]),
        "bn_chan": int(args["out_channels"]),
        "hid_chan": int(args["in_channels"]),
        "n_blocks": int(args["num_blocks"]),
        "upsampling_depth": int(args["upsampling_depth"]),
    }


def _check_encoder(args: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str) -> None:
    weight = state.get("encoder.weight")
    if weight is None:
        return  # reported with the other missing keys
    expected = args["enc_kernel_size"] * args["sample_rate"] / 1000
    if weight.ndim != 3 or weight.shape[-1] != expected:
        actual = weight.shape[-1] if weight.ndim == 3 else "?"
        implied = f"{1000 * actual / args['sample_rate']:g} ms" if weight.ndim == 3 else "?"
        raise ValueError(
            f"{where}: sample_rate={args['sample_rate']} and enc_kernel_size="
            f"{args['enc_kernel_size']} ms imply an encoder kernel of {expected:g} samples, but "
            f"encoder.weight has shape {tuple(weight.shape)} (kernel {actual} samples = "
            f"{implied} at that rate): the model_args do not match the weights"
        )


def _check_positions(table: torch.Tensor, where: str) -> None:
    """Refuse a positional table that is not the sinusoidal one (within float32 rounding).

    The released code builds the table in float32: the angle ``position * frequency`` is
    rounded to float32 (an error up to ``position * 2**-24`` radians), and ``exp`` of the
    frequencies differs by an ulp between CPUs, so row ``p`` of a genuine table may differ from
    the exact sines by about ``p * 2**-23`` (5e-4 at row 10,000; the released tables and ours
    differ by that much on some machines). Anything beyond that is another table.
    """
    rows, channels = table.shape[-2:]
    position = torch.arange(rows, dtype=torch.float64)[:, None]
    frequency = torch.exp(
        torch.arange(0, channels, 2, dtype=torch.float64) * -(math.log(10000.0) / channels)
    )
    angles = position * frequency
    exact = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(rows, channels)
    excess = (table.reshape(rows, channels).double() - exact).abs() - (1e-5 + position * 2**-22)
    worst = excess.max().item()
    if not math.isfinite(worst) or worst > 0:
        row = int(excess.max(dim=1).values.argmax()) if math.isfinite(worst) else 0
        raise ValueError(
            f"{where}: {POSITION_KEY} is not the sinusoidal table (row {row} differs by "
            f"{worst + 1e-5 + row * 2**-22:.3g}, more than float32 rounding allows); this model "
            "computes positions itself and cannot reproduce a different table"
        )


def convert_state_dict(
    state: Mapping[str, torch.Tensor], model: torch.nn.Module, where: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Rename a released state dict to ``model``'s keys, checking keys and shapes.

    Args:
        state: The released ``state_dict``.
        model: A model built with the matching arguments (used for names and shapes).
        where: Name of the source, for error messages.

    Returns:
        A state dict that ``model.load_state_dict(..., strict=True)`` accepts.

    Raises:
        ValueError: Unknown or missing keys (all listed, with released names), or shape
            mismatches (each key with both shapes).
    """
    ours = model.state_dict()
    norm_keys = {
        f"{name}.{param}"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.GroupNorm)
        for param in ("weight", "bias")
    }
    converted, unknown, mismatched = {}, [], []
    for key, tensor in state.items():
        if key == POSITION_KEY:
            _check_positions(tensor, where)
            continue
        target = released_to_ours(key)
        if target is None or target not in ours:
            unknown.append(key)
        elif tuple(tensor.shape) != tuple(ours[target].shape):
            mismatched.append(
                f"{key}: checkpoint {tuple(tensor.shape)} vs model {tuple(ours[target].shape)}"
            )
        else:
            converted[target] = tensor
    missing = [ours_to_released(key, norm_keys) for key in ours if key not in converted]
    missing = [key for key in missing if key not in {k for k in state if k not in unknown}]
    problems = []
    if missing:
        problems.append(f"missing keys: {missing}")
    if unknown:
        problems.append(f"unexpected keys: {unknown}")
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if problems:
        raise ValueError(f"{where} does not match TDANetBest's layout: " + " | ".join(problems))
    return converted


def load_look2hear(
    checkpoint: str | Path | Mapping,
    *,
    model_class=None,
    legacy_look2hear: bool = True,
    **kwargs: Any,
):
    """Build our model from a released checkpoint (see ``TDANet.from_look2hear``).

    Args:
        checkpoint: Path, loaded dict, or Hugging Face repo id.
        model_class: The class to build (default :class:`~asteroid_tdanet.TDANet`).
        legacy_look2hear: Reproduce the released code (default) or use the paper's wiring.
        **kwargs: Extra model arguments.

    Returns:
        The model in eval mode.
    """
    if model_class is None:
        from .models import TDANet as model_class
    package, where = _read(checkpoint)
    args, state = _check_package(package, where)
    _check_encoder(args, state, where)
    model_args = {**model_args_from_released(args), **kwargs}
    model = model_class(legacy_look2hear=legacy_look2hear, **model_args)
    model.load_state_dict(convert_state_dict(state, model, where), strict=True)
    return model.eval()


# What the released code fixes in its source instead of storing in ``model_args`` (GA builds
# MultiHeadAttention(N, 8, 0.1), FFN(drop=0.1) and DropPath(0.1)), and the computation it runs:
# the two defects that ``legacy_look2hear=True`` reproduces.
RELEASED_FIXED = {"n_heads": 8, "dropout": 0.1, "drop_path": 0.1, "legacy_look2hear": True}


def check_expressible(model: torch.nn.Module) -> None:
    """Raise if the released format cannot describe ``model`` exactly.

    The format stores ``model_args`` (channels, blocks, depth, kernel in whole ms, sources,
    sample rate) and the weights; the released code hard-codes the rest (``RELEASED_FIXED``)
    and always computes what ``legacy_look2hear=True`` computes. A model differing in any of
    these would come back (in the authors' code, or through :func:`load_look2hear`) as another
    model, silently. ``checkpoint_blocks`` changes memory use only and is not checked.

    Raises:
        TypeError: Not a TDANet (or TDANetLarge).
        ValueError: Every value the format cannot express, named with the released value.
    """
    from .models import TDANet

    if not isinstance(model, TDANet):
        raise TypeError(
            f"to_look2hear converts TDANet / TDANetLarge models, not {type(model).__name__}"
        )
    config = model.masker.get_config()
    problems = [
        f"{key}={config[key]!r} (the released code always uses {value!r})"
        for key, value in RELEASED_FIXED.items()
        if config[key] != value
    ]
    if not float(model.enc_kernel_ms).is_integer():
        problems.append(
            f"enc_kernel_ms={model.enc_kernel_ms:g} (the released code computes the kernel as "
            "enc_kernel_size * sample_rate // 1000 from whole milliseconds)"
        )
    if not float(model.sample_rate).is_integer():
        problems.append(f"sample_rate={model.sample_rate:g} (stored as a whole number of Hz)")
    if problems:
        hint = ""
        if "legacy_look2hear" in " ".join(problems):
            hint += (
                " legacy_look2hear=False is the paper's computation; the released code computes "
                "the other one, so these weights would give other outputs there."
            )
        if any(key in " ".join(problems) for key in ("dropout", "drop_path")):
            hint += (
                " Dropout only acts in training: to export anyway, build the model with the "
                "released values and load this state dict into it."
            )
        raise ValueError(
            "the released TDANetBest format cannot express this model: "
            + "; ".join(problems)
            + "."
            + hint
        )


def to_look2hear(model: torch.nn.Module) -> dict[str, Any]:
    """Our model in the released file layout (positional table included), for the authors' code.

    Args:
        model: A :class:`~asteroid_tdanet.TDANet` that the format can express (see
            :func:`check_expressible`: 8 heads, dropout and drop-path 0.1,
            ``legacy_look2hear=True``, a kernel of whole milliseconds).

    Returns:
        ``{"model_name": "TDANetBest", "model_args": ..., "state_dict": ...}``.

    Raises:
        TypeError, ValueError: See :func:`check_expressible`.
    """
    check_expressible(model)
    masker = model.masker
    norm_keys = {
        f"{name}.{param}"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.GroupNorm)
        for param in ("weight", "bias")
    }
    state = {
        ours_to_released(k, norm_keys): v.detach().to("cpu", copy=True)
        for k, v in model.state_dict().items()
    }
    state[POSITION_KEY] = sinusoidal_positions(RELEASED_POSITIONS, masker.hid_chan).unsqueeze(0)
    args = {
        "out_channels": masker.bn_chan,
        "in_channels": masker.hid_chan,
        "num_blocks": masker.n_blocks,
        "upsampling_depth": masker.upsampling_depth,
        "enc_kernel_size": int(model.enc_kernel_ms),
        "num_sources": masker.n_src,
        "sample_rate": int(model.sample_rate),
    }
    return {"model_name": RELEASED_MODEL_NAME, "model_args": args, "state_dict": state}
