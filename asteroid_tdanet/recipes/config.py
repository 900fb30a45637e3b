"""Recipe configuration: one YAML file per experiment, checked against a typed schema.

A conf has seven sections; every key is required, so the file shows every value the run uses
(nothing is filled in or overridden behind the user's back)::

    data:                      # what asteroid_tdanet.data.make_dataset reads
      format: librimix         # the data set's registry name: librimix | wham | lrs2_2mix |
                               # mini2mix (asteroid_tdanet/data/registry.py)
      task: sep_clean          # sep_clean | sep_noisy (librimix, wham)
      sample_rate: 8000        # Hz
      n_src: 2
      segment: 3.0             # training crop in seconds (null = whole utterances, batch_size 1)
      valid_segment: 3.0       # validation crop in seconds (null = whole utterances)
      batch_size: 1            # per process (GPU); effective batch = batch_size x GPUs x nodes
                               # x training.accumulate_grad_batches
      valid_batch_size: 1
      num_workers: 4           # DataLoader worker processes per training process
      dynamic_mixing: false    # true: every training item is a new mixture of the training
                               # split's speakers, with the data set's level rules
                               # (asteroid_tdanet/data/dynamic_mixing.py); valid/test stay fixed
      mixtures_per_epoch: null # dynamic mixing: items per epoch (null: as many as the fixed
                               # training set); must be null without dynamic mixing
      speed_perturb: null      # speed factors drawn per source before mixing, e.g.
                               # [0.95, 1.0, 1.05] as SpeechBrain / the authors' SpeedAug
                               # (null: off); with fixed mixtures, they are re-mixed
    model:
      name: TDANet             # any name asteroid.models.get knows (TDANet, TDANetLarge,
                               # ConvTasNet, Sepformer)
      args: {...}              # constructor arguments, except n_src and sample_rate (from data)
    training:
      epochs: 500              # maximum number of epochs
      max_minutes: null        # wall-clock cap on training (null = none); stops mid-epoch
      max_steps: null          # optimizer-step cap on training (null = none): unlike
                               # max_minutes, what it trains does not depend on machine load
      early_stop_patience: 30  # epochs without a better val_loss before stopping (null = off)
      gradient_clip: 5.0       # max gradient L2 norm (null = off)
      precision: 32-true       # 32-true | bf16-mixed | 16-mixed (Lightning precision)
      save_top_k: 5            # best checkpoints kept (by val_loss), besides last.ckpt
      accumulate_grad_batches: 1
      reference_batch: 4       # effective batch the learning rate was set for (null: no check)
      batch_rule: accumulate   # keeps reference_batch on other device counts: accumulate |
                               # per_device | scale_lr | none (asteroid_tdanet/recipes/batch.py)
      seed: 0
      log_every_n_steps: 50    # TensorBoard step logging period
      find_unused_parameters: false   # DDP: set true only for models with unused parameters
    optim:
      name: adam               # adam | adamw | sgd
      lr: 1.0e-3               # write floats with a dot: YAML reads 1e-3 as a string
      weight_decay: 0.0
    scheduler:
      name: plateau            # plateau (ReduceLROnPlateau on val_loss) | cosine (linear
                               # warmup, then cosine decay to 0 at training.max_steps) | none
      factor: 0.5              # plateau only (null otherwise)
      patience: 15             # plateau only (null otherwise)
      warmup_steps: null       # cosine only: optimizer steps of linear warmup from 0
    loss:
      train: pit_neg_snr       # pit_neg_snr | pit_neg_sisdr | pit_neg_sdsdr (PIT, pairwise matrix)
      valid: pit_neg_sisdr     # the monitored val_loss
    evaluation:
      metrics: [si_sdr, sdr, stoi, pesq]   # asteroid.metrics.get_metrics names
      n_examples: 5            # test utterances whose separated wavs are written
      sdr_backend: mir_eval    # mir_eval: get_metrics' BSS-eval; torchmetrics: the same SDR
                               # values (to 1e-6 dB) about 10x faster

Values given on the command line (``--optim.lr 5e-4``, ``--model.args.n_blocks 8``) replace conf
values; their type comes from this schema (for ``model.args``: from the model constructor's type
hints or defaults), never from the value found in the YAML file.
"""

from __future__ import annotations

import copy
import inspect
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from asteroid_tdanet.data.registry import NAMES as DATA_SETS

NONE_WORDS = ("null", "none", "~")
TRUE_WORDS = ("true", "yes", "1", "on")
FALSE_WORDS = ("false", "no", "0", "off")


class ConfigError(ValueError):
    """A conf file or a command-line override is invalid (the message names the key)."""


@dataclass(frozen=True)
class Field:
    """One schema entry: the Python type, whether null is allowed, and allowed values."""

    type: type
    nullable: bool = False
    choices: tuple | None = None


SCHEMA: dict[str, dict[str, Field]] = {
    "data": {
        "format": Field(str, choices=DATA_SETS),
        "task": Field(str),
        "sample_rate": Field(int),
        "n_src": Field(int),
        "segment": Field(float, nullable=True),
        "valid_segment": Field(float, nullable=True),
        "batch_size": Field(int),
        "valid_batch_size": Field(int),
        "num_workers": Field(int),
        "dynamic_mixing": Field(bool),
        "mixtures_per_epoch": Field(int, nullable=True),
        "speed_perturb": Field(list, nullable=True),
    },
    "model": {"name": Field(str), "args": Field(dict)},
    "training": {
        "epochs": Field(int),
        "max_minutes": Field(float, nullable=True),
        "max_steps": Field(int, nullable=True),
        "early_stop_patience": Field(int, nullable=True),
        "gradient_clip": Field(float, nullable=True),
        "precision": Field(str, choices=("32-true", "bf16-mixed", "16-mixed")),
        "save_top_k": Field(int),
        "accumulate_grad_batches": Field(int),
        "reference_batch": Field(int, nullable=True),
        "batch_rule": Field(str, choices=("accumulate", "per_device", "scale_lr", "none")),
        "seed": Field(int),
        "log_every_n_steps": Field(int),
        "find_unused_parameters": Field(bool),
    },
    "optim": {
        "name": Field(str, choices=("adam", "adamw", "sgd")),
        "lr": Field(float),
        "weight_decay": Field(float),
    },
    "scheduler": {
        "name": Field(str, choices=("plateau", "cosine", "none")),
        "factor": Field(float, nullable=True),
        "patience": Field(int, nullable=True),
        "warmup_steps": Field(int, nullable=True),
    },
    "loss": {
        "train": Field(str, choices=("pit_neg_snr", "pit_neg_sisdr", "pit_neg_sdsdr")),
        "valid": Field(str, choices=("pit_neg_snr", "pit_neg_sisdr", "pit_neg_sdsdr")),
    },
    "evaluation": {
        "metrics": Field(list),
        "n_examples": Field(int),
        "sdr_backend": Field(str, choices=("mir_eval", "torchmetrics")),
    },
}

EVAL_METRICS = ("si_sdr", "sdr", "sir", "sar", "stoi", "pesq")
# Model arguments taken from the data section, so a conf states them once.
DATA_MODEL_ARGS = ("n_src", "sample_rate")


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_value(key: str, value: Any, field: Field) -> Any:
    """Check a YAML value against its schema field; ints are accepted where floats are expected.

    Args:
        key: Dotted key, for messages.
        value: The value read from YAML.
        field: Its schema entry.

    Returns:
        The value (an int converted to float for float fields).

    Raises:
        ConfigError: Wrong type or a value outside ``field.choices``.
    """
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{key}: null is not allowed (expected {field.type.__name__})")
    if field.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = ""
            if isinstance(value, str):
                hint = " (YAML reads 1e-3 as a string: write 1.0e-3)"
            raise ConfigError(f"{key}: expected a float, got {_type_name(value)} {value!r}{hint}")
        value = float(value)
    elif field.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an int, got {_type_name(value)} {value!r}")
    elif not isinstance(value, field.type):
        raise ConfigError(
            f"{key}: expected {field.type.__name__}, got {_type_name(value)} {value!r}"
        )
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{key}: {value!r} is not one of {list(field.choices)}")
    return value


def validate(conf: dict[str, Any], source: str = "conf") -> dict[str, Any]:
    """Check a whole conf against :data:`SCHEMA` and return a normalized deep copy.

    Args:
        conf: The parsed YAML mapping.
        source: Where it came from (file name), for messages.

    Returns:
        The conf with floats normalized.

    Raises:
        ConfigError: Missing or unknown sections/keys, wrong types, inconsistent values.
    """
    if not isinstance(conf, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {_type_name(conf)}")
    conf = copy.deepcopy(conf)
    unknown = sorted(set(conf) - set(SCHEMA))
    missing = sorted(set(SCHEMA) - set(conf))
    if unknown or missing:
        raise ConfigError(
            f"{source}: unknown sections {unknown}, missing sections {missing} "
            f"(expected {list(SCHEMA)})"
        )
    for section, fields in SCHEMA.items():
        values = conf[section]
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section} must be a mapping")
        unknown = sorted(set(values) - set(fields))
        missing = sorted(set(fields) - set(values))
        if unknown:
            raise ConfigError(f"{source}: unknown keys in {section}: {unknown}")
        if missing:
            raise ConfigError(f"{source}: missing keys in {section}: {missing}")
        for key, field in fields.items():
            values[key] = check_value(f"{section}.{key}", values[key], field)
    _check_consistency(conf, source)
    return conf


def _check_consistency(conf: dict[str, Any], source: str) -> None:
    data, training = conf["data"], conf["training"]
    for key in ("sample_rate", "n_src", "batch_size", "valid_batch_size"):
        if data[key] < 1:
            raise ConfigError(f"{source}: data.{key} must be >= 1, got {data[key]}")
    for key in ("segment", "valid_segment"):
        if data[key] is not None and data[key] <= 0:
            raise ConfigError(f"{source}: data.{key} must be > 0 or null, got {data[key]}")
    if data["segment"] is None and data["batch_size"] != 1:
        raise ConfigError(
            f"{source}: data.segment is null (whole utterances of different lengths): "
            f"data.batch_size must be 1, got {data['batch_size']}"
        )
    if data["valid_segment"] is None and data["valid_batch_size"] != 1:
        raise ConfigError(
            f"{source}: data.valid_segment is null: data.valid_batch_size must be 1, "
            f"got {data['valid_batch_size']}"
        )
    if data["num_workers"] < 0:
        raise ConfigError(f"{source}: data.num_workers must be >= 0")
    _check_augmentation(data, source)
    if training["epochs"] < 1 or training["accumulate_grad_batches"] < 1:
        raise ConfigError(f"{source}: training.epochs and accumulate_grad_batches must be >= 1")
    if training["reference_batch"] is not None and training["reference_batch"] < 1:
        raise ConfigError(f"{source}: training.reference_batch must be >= 1 or null")
    if training["max_minutes"] is not None and training["max_minutes"] <= 0:
        raise ConfigError(f"{source}: training.max_minutes must be > 0 or null")
    if training["max_steps"] is not None and training["max_steps"] < 1:
        raise ConfigError(f"{source}: training.max_steps must be >= 1 or null")
    if conf["optim"]["lr"] <= 0:
        raise ConfigError(f"{source}: optim.lr must be > 0")
    sched = conf["scheduler"]
    if sched["name"] == "plateau" and (sched["factor"] is None or sched["patience"] is None):
        raise ConfigError(f"{source}: scheduler plateau needs factor and patience")
    if sched["name"] == "cosine":
        # The decay is laid out over the step budget: without one it has no end to reach.
        if training["max_steps"] is None:
            raise ConfigError(f"{source}: scheduler cosine needs training.max_steps")
        warmup = sched["warmup_steps"]
        if warmup is None or not 0 <= warmup < training["max_steps"]:
            raise ConfigError(
                f"{source}: scheduler cosine needs 0 <= warmup_steps < training.max_steps "
                f"({training['max_steps']}), got {warmup}"
            )
    bad = [m for m in conf["evaluation"]["metrics"] if m not in EVAL_METRICS]
    if bad or not conf["evaluation"]["metrics"]:
        raise ConfigError(
            f"{source}: evaluation.metrics {conf['evaluation']['metrics']} must be a non-empty "
            f"list of {list(EVAL_METRICS)}"
        )
    if "si_sdr" not in conf["evaluation"]["metrics"]:
        raise ConfigError(f"{source}: evaluation.metrics must include si_sdr (SI-SNRi)")
    clash = sorted(set(conf["model"]["args"]) & set(DATA_MODEL_ARGS))
    if clash:
        raise ConfigError(
            f"{source}: model.args must not set {clash}: they come from the data section"
        )


def _check_augmentation(data: dict[str, Any], source: str) -> None:
    """Dynamic mixing and speed perturbation keys (see the module docstring)."""
    from asteroid_tdanet.data.speed import check_factors

    if data["dynamic_mixing"]:
        if data["segment"] is None:
            raise ConfigError(
                f"{source}: data.dynamic_mixing draws crops of data.segment seconds: set "
                "data.segment (it is null)"
            )
        if data["mixtures_per_epoch"] is not None and data["mixtures_per_epoch"] < 1:
            raise ConfigError(f"{source}: data.mixtures_per_epoch must be >= 1 or null")
    elif data["mixtures_per_epoch"] is not None:
        raise ConfigError(
            f"{source}: data.mixtures_per_epoch is only for data.dynamic_mixing: true "
            f"(fixed mixtures: one epoch is the training set); set it to null"
        )
    if data["speed_perturb"] is not None:
        factors = data["speed_perturb"]
        if any(isinstance(f, bool) or not isinstance(f, (int, float)) for f in factors):
            raise ConfigError(f"{source}: data.speed_perturb must be a list of numbers: {factors}")
        try:
            data["speed_perturb"] = list(check_factors(factors))
        except ValueError as err:
            raise ConfigError(f"{source}: data.speed_perturb: {err}") from None


def load_conf(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a conf file, apply command-line overrides, validate everything.

    Args:
        path: YAML file.
        overrides: ``["--optim.lr", "5e-4", "--model.args.n_blocks", "8"]`` style list (the
            ``--key=value`` form works too).

    Returns:
        The validated conf (plain Python values).

    Raises:
        FileNotFoundError: No such file.
        ConfigError: Invalid YAML content or override.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"conf file not found: {path}")
    try:
        conf = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    conf = validate(conf, str(path))
    if overrides:
        conf = apply_overrides(conf, overrides)
        conf = validate(conf, f"{path} + command-line overrides")
    check_model_args(conf["model"]["name"], conf["model"]["args"], str(path))
    return conf


def split_overrides(tokens: list[str]) -> list[tuple[str, str]]:
    """``["--a.b", "1", "--c.d=x"]`` -> ``[("a.b", "1"), ("c.d", "x")]``."""
    pairs, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise ConfigError(f"override {token!r}: expected --section.key VALUE")
        if "=" in token:
            key, value = token[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(tokens):
                raise ConfigError(f"override {token}: missing value")
            key, value = token[2:], tokens[i + 1]
            i += 2
        pairs.append((key, value))
    return pairs


def parse_text(key: str, text: str, field: Field) -> Any:
    """Convert command-line text to the schema type of ``key``.

    Raises:
        ConfigError: The text is not a valid value of that type.
    """
    if field.nullable and text.strip().lower() in NONE_WORDS:
        return None
    try:
        if field.type is bool:
            low = text.strip().lower()
            if low in TRUE_WORDS:
                return True
            if low in FALSE_WORDS:
                return False
            raise ValueError(text)
        if field.type in (int, float, str):
            value = field.type(text)
        elif field.type in (list, dict):
            value = yaml.safe_load(text)
            if field.type is list and isinstance(value, str):
                # "a,b" or "0.95,1.05": items typed as YAML would type them
                value = [yaml.safe_load(item.strip()) for item in value.split(",") if item.strip()]
            if not isinstance(value, field.type):
                raise ValueError(text)
        else:
            value = yaml.safe_load(text)
    except ValueError as err:
        raise ConfigError(
            f"--{key} {text!r}: not a valid {field.type.__name__}"
            f"{' (or null)' if field.nullable else ''}"
        ) from err
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"--{key} {text!r}: not one of {list(field.choices)}")
    return value


def apply_overrides(conf: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """Return a copy of ``conf`` with ``--section.key value`` overrides applied (typed)."""
    conf = copy.deepcopy(conf)
    for key, text in split_overrides(tokens):
        parts = key.split(".")
        if len(parts) == 3 and parts[:2] == ["model", "args"]:
            arg_fields = model_arg_fields(conf["model"]["name"])
            if parts[2] not in arg_fields:
                raise ConfigError(
                    f"--{key}: {conf['model']['name']} has no argument {parts[2]!r} "
                    f"(known: {sorted(arg_fields)})"
                )
            conf["model"]["args"][parts[2]] = parse_text(key, text, arg_fields[parts[2]])
            continue
        if len(parts) != 2 or parts[0] not in SCHEMA or parts[1] not in SCHEMA[parts[0]]:
            raise ConfigError(f"--{key}: unknown conf key (sections: {list(SCHEMA)})")
        field = SCHEMA[parts[0]][parts[1]]
        if field.type is dict:
            raise ConfigError(f"--{key}: set its entries one by one (--{key}.NAME VALUE)")
        conf[parts[0]][parts[1]] = parse_text(key, text, field)
    return conf


def _model_class(name: str):
    from asteroid_tdanet import get_model  # ours (Sepformer too), then asteroid's

    try:
        return get_model(name)
    except ValueError as err:
        raise ConfigError(f"model.name: unknown model {name!r}: {err}") from err


def _field_from_annotation(annotation: Any, default: Any) -> Field:
    """Schema field for a constructor parameter: type hint first, else the default's type."""
    nullable = default is None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = nullable or len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else Any
        origin = typing.get_origin(annotation)
    if origin is not None:
        annotation = origin
    if annotation in (int, float, bool, str, list, dict, tuple):
        return Field(list if annotation is tuple else annotation, nullable=nullable)
    if default is not None and not isinstance(default, (tuple, list, dict)):
        return Field(type(default), nullable=nullable)
    return Field(object, nullable=True)


def model_arg_fields(name: str) -> dict[str, Field]:
    """Constructor arguments of a registered model with their types.

    Arguments passed on through ``**kwargs`` to a parent class are included. Arguments that
    come from the data section (``n_src``, ``sample_rate``) are left out.
    """
    from asteroid.models.base_models import BaseModel

    fields: dict[str, Field] = {}
    for klass in _model_class(name).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass.__module__ == BaseModel.__module__:
            break  # Asteroid's base classes take built modules, not conf values
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # unresolvable annotations: fall back to defaults' types
            hints = {}
        params = inspect.signature(init).parameters
        for pname, param in params.items():
            if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if pname in DATA_MODEL_ARGS or pname in fields:
                continue
            default = None if param.default is inspect.Parameter.empty else param.default
            fields[pname] = _field_from_annotation(hints.get(pname, Any), default)
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return fields


def check_model_args(name: str, args: dict[str, Any], source: str = "conf") -> None:
    """Check ``model.args`` names and types against the model constructor.

    Raises:
        ConfigError: Unknown model, unknown argument or wrong type.
    """
    fields = model_arg_fields(name)
    model_class = _model_class(name)
    takes_kwargs = any(
        p.kind == p.VAR_KEYWORD for p in inspect.signature(model_class.__init__).parameters.values()
    )
    for key, value in args.items():
        if key not in fields:
            if takes_kwargs and model_class.__module__.startswith("asteroid."):
                continue  # e.g. ConvTasNet passes **fb_kwargs to its filterbank
            raise ConfigError(
                f"{source}: model.args.{key}: {name} has no such argument (known: {sorted(fields)})"
            )
        field = fields[key]
        if field.type is object:
            continue
        if field.type is list and isinstance(value, tuple):
            continue
        check_value(f"model.args.{key}", value, field)
        if field.type is float and isinstance(value, int) and not isinstance(value, bool):
            args[key] = float(value)


def model_kwargs(conf: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments for the conf's model: ``model.args`` + n_src, sample_rate."""
    return {
        **conf["model"]["args"],
        "n_src": conf["data"]["n_src"],
        "sample_rate": conf["data"]["sample_rate"],
    }


def build_model(conf: dict[str, Any]):
    """Instantiate the conf's model (registered Asteroid name)."""
    return _model_class(conf["model"]["name"])(**model_kwargs(conf))


def dump_conf(conf: dict[str, Any], path: str | Path) -> Path:
    """Write a conf as YAML (section order kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(conf, sort_keys=False, default_flow_style=None))
    return path


def flatten(conf: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat = {}
    for key, value in conf.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def conf_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two confs: ``{key: (old, new)}``."""
    a, b = flatten(old), flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
