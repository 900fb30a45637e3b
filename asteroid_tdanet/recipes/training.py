"""Stage 2 of every recipe: train a registered Asteroid model with ``asteroid.engine.System``.

One function, :func:`train`, turns a validated conf (see :mod:`asteroid_tdanet.recipes.config`)
and a prepared data directory into an experiment directory::

    exp/<tag>/
      conf.yml                 the conf used (after command-line overrides)
      checkpoints/last.ckpt    written after every epoch (resume point)
      checkpoints/epoch=..ckpt the best ``training.save_top_k`` by val_loss
      best_k_models.json       {checkpoint: val_loss}
      best_model.pth           Asteroid model file (``asteroid_tdanet.io.load_model``)
      train_log/               TensorBoard events + history.csv (per-epoch losses and lr)
      training_curve.png

CPU or GPUs, several GPUs and nodes through Lightning DDP, CPU DDP (gloo) for tests.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from .config import ConfigError, build_model, conf_diff, dump_conf

if TYPE_CHECKING:  # pragma: no cover
    from .batch import BatchPlan
    from .launch import Launch

log = logging.getLogger(__name__)

# Conf keys that may change when resuming: they do not change what the checkpoint means.
RESUMABLE_CHANGES = (
    "training.epochs",
    "training.max_minutes",
    "training.early_stop_patience",
    "training.log_every_n_steps",
    "data.num_workers",
    "evaluation.",
)


class ExperimentExistsError(RuntimeError):
    """The experiment directory holds a run and neither resume nor overwrite was asked."""


class NonFiniteLossError(FloatingPointError):
    """The training or validation loss became NaN or infinite."""


def make_loss(name: str):
    """PIT loss from its conf name (``pit_neg_snr``, ``pit_neg_sisdr``, ``pit_neg_sdsdr``)."""
    from asteroid.losses import (
        PITLossWrapper,
        pairwise_neg_sdsdr,
        pairwise_neg_sisdr,
        pairwise_neg_snr,
    )

    pairwise = {
        "pit_neg_snr": pairwise_neg_snr,
        "pit_neg_sisdr": pairwise_neg_sisdr,
        "pit_neg_sdsdr": pairwise_neg_sdsdr,
    }[name]
    return PITLossWrapper(pairwise, pit_from="pw_mtx")


def make_optimizer(params, optim: dict[str, Any]) -> torch.optim.Optimizer:
    """Optimizer from the ``optim`` conf section."""
    kwargs = {"lr": optim["lr"], "weight_decay": optim["weight_decay"]}
    if optim["name"] == "adam":
        return torch.optim.Adam(params, **kwargs)
    if optim["name"] == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    return torch.optim.SGD(params, **kwargs)


def _system_class():
    """The LightningModule, built lazily so importing this module stays cheap."""
    from asteroid.engine.system import System

    class SeparationSystem(System):
        """Asteroid ``System`` with distinct train/valid losses, a NaN guard and a loss history.

        The history (one row per epoch: train_loss, val_loss, lr) is stored in every checkpoint,
        so a resumed run continues it exactly; rank 0 also writes it to ``history_path``.
        """

        def __init__(self, *args, valid_loss_func, history_path: Path | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.valid_loss_func = valid_loss_func
            self.history_path = history_path
            self.history: list[dict[str, float]] = []
            self._sums = torch.zeros(4)  # train sum, train count, valid sum, valid count

        @staticmethod
        def config_to_hparams(dic):
            """Flattened conf for TensorBoard's hparams (lists as text)."""
            from asteroid.utils import flatten_dict

            return {
                k: (str(v) if v is None or isinstance(v, (list, tuple)) else v)
                for k, v in flatten_dict(dic).items()
            }

        def common_step(self, batch, batch_nb, train=True):
            mixture, sources = batch[0], batch[1]
            estimates = self(mixture)
            loss_func = self.loss_func if train else self.valid_loss_func
            # The loss in float32 under any mixed precision: bf16 keeps ~3 significant digits.
            with torch.autocast(device_type=estimates.device.type, enabled=False):
                loss = loss_func(estimates.float(), sources.float())
            return loss, mixture.shape[0]

        def _stop_if_not_finite(self, loss: torch.Tensor, where: str) -> None:
            here = not bool(torch.isfinite(loss))
            bad = here
            if self.trainer.world_size > 1:  # every process must stop, or the others hang
                bad = self.trainer.strategy.reduce_boolean_decision(here, all=False)
            if bad:
                # A process whose own loss is finite says where the NaN came from.
                what = f"is {loss.item()}" if here else "is not finite on another process"
                raise NonFiniteLossError(
                    f"{where} loss {what} (epoch {self.current_epoch}, "
                    f"step {self.global_step}): stopping. No checkpoint was written after this "
                    "point; checkpoints/last.ckpt holds the last finished epoch. Lower optim.lr, "
                    "set training.gradient_clip, or check the data, then resume with --resume yes"
                )

        def on_train_epoch_start(self):
            self._sums.zero_()

        def training_step(self, batch, batch_nb):
            loss, n = self.common_step(batch, batch_nb, train=True)
            self._stop_if_not_finite(loss, "training")
            self.log("loss", loss, prog_bar=True, batch_size=n)
            self._sums[0] += loss.detach().float().cpu() * n
            self._sums[1] += n
            return loss

        def on_validation_epoch_start(self):
            self._sums[2:] = 0

        def validation_step(self, batch, batch_nb):
            loss, n = self.common_step(batch, batch_nb, train=False)
            self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=n)
            self._sums[2] += loss.detach().float().cpu() * n
            self._sums[3] += n

        def on_validation_epoch_end(self):
            super().on_validation_epoch_end()
            if self.trainer.sanity_checking:
                return
            sums = self._sums.clone()
            if self.trainer.world_size > 1:
                sums = self.trainer.strategy.reduce(sums.to(self.device), reduce_op="sum").cpu()
            val_loss = (sums[2] / sums[3].clamp(min=1)).item()
            # Raised before ModelCheckpoint runs: a diverged model is never saved.
            self._stop_if_not_finite(torch.tensor(val_loss), "validation")
            row = {
                "epoch": int(self.current_epoch),
                "train_loss": (sums[0] / sums[1]).item() if sums[1] > 0 else math.nan,
                "val_loss": val_loss,
                "lr": float(self.optimizer.param_groups[0]["lr"]),
            }
            self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]
            if self.trainer.is_global_zero and self.history_path is not None:
                write_history(self.history, self.history_path)

        def on_save_checkpoint(self, checkpoint):
            checkpoint = super().on_save_checkpoint(checkpoint)
            checkpoint["history"] = [dict(r) for r in self.history]
            return checkpoint

        def on_load_checkpoint(self, checkpoint):
            self.history = [dict(r) for r in checkpoint.get("history", [])]

    return SeparationSystem


def cosine_schedule(warmup_steps: int, total_steps: int):
    """Learning-rate factor per optimizer step: linear warmup, then cosine decay.

    Args:
        warmup_steps: Steps of linear rise from 0 to the full rate (0: none).
        total_steps: Step at which the factor reaches 0 (``training.max_steps``).

    Returns:
        A function step -> factor in [0, 1], for ``torch.optim.lr_scheduler.LambdaLR``.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def write_history(history: list[dict[str, float]], path: Path) -> None:
    """Per-epoch losses as CSV (epoch, train_loss, val_loss, lr)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,train_loss,val_loss,lr"]
    lines += [
        f"{r['epoch']},{r['train_loss']:.6f},{r['val_loss']:.6f},{r['lr']:.3e}" for r in history
    ]
    path.write_text("\n".join(lines) + "\n")


def read_history(path: Path) -> list[dict[str, float]]:
    """Read :func:`write_history`'s CSV."""
    rows = path.read_text().strip().splitlines()[1:]
    out = []
    for line in rows:
        epoch, train_loss, val_loss, lr = line.split(",")
        out.append(
            {
                "epoch": int(epoch),
                "train_loss": float(train_loss),
                "val_loss": float(val_loss),
                "lr": float(lr),
            }
        )
    return out


def make_loaders(conf: dict[str, Any], data_dir: Path, pin_memory: bool):
    """Train and validation DataLoaders of a conf's data section.

    The training set is the fixed training mixtures (``asteroid_tdanet.data.make_dataset``), or
    with ``data.dynamic_mixing`` new mixtures drawn at every step
    (``asteroid_tdanet.data.make_dynamic_mixing_dataset``, with its own sampler: reproducible
    from ``training.seed``, resumable, different on every worker and DDP rank); either may
    speed-perturb the sources (``data.speed_perturb``). Validation is the fixed official set.
    """
    from asteroid_tdanet.data import (
        DynamicMixingSampler,
        make_dataset,
        make_dynamic_mixing_dataset,
    )

    data = conf["data"]
    common = {"sample_rate": data["sample_rate"], "n_src": data["n_src"], "task": data["task"]}
    sampler = None
    if data["dynamic_mixing"]:
        train_set = make_dynamic_mixing_dataset(
            data["format"],
            data_dir,
            segment=data["segment"],
            seed=conf["training"]["seed"],
            mixtures_per_epoch=data["mixtures_per_epoch"],
            speed_perturb=data["speed_perturb"],
            **common,
        )
        sampler = DynamicMixingSampler(len(train_set))
    else:
        train_set = make_dataset(
            data["format"],
            data_dir,
            "train",
            segment=data["segment"],
            speed_perturb=data["speed_perturb"],
            **common,
        )
    valid_set = make_dataset(
        data["format"], data_dir, "valid", segment=data["valid_segment"], **common
    )
    if len(train_set) < data["batch_size"]:
        raise ConfigError(
            f"{data_dir}: the train split has {len(train_set)} examples, fewer than "
            f"data.batch_size={data['batch_size']}"
        )
    if len(valid_set) == 0:
        raise ConfigError(f"{data_dir}: the valid split is empty")
    workers = data["num_workers"]
    loader_kw = {
        "num_workers": workers,
        "pin_memory": pin_memory,
        # Keep workers alive across epochs: restarting them every epoch costs seconds.
        "persistent_workers": workers > 0,
    }
    train_loader = DataLoader(
        train_set,
        batch_size=data["batch_size"],
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        **loader_kw,
    )
    valid_loader = DataLoader(
        valid_set, batch_size=data["valid_batch_size"], shuffle=False, **loader_kw
    )
    return train_loader, valid_loader


def prepare_exp_dir(
    exp_dir: Path, conf: dict[str, Any], resume: bool, overwrite: bool
) -> Path | None:
    """Refuse to reuse an experiment unless asked; return the checkpoint to resume from.

    Args:
        exp_dir: ``exp/<tag>``.
        conf: The conf of this run.
        resume: Continue from ``checkpoints/last.ckpt``.
        overwrite: Delete the existing experiment first.

    Returns:
        ``last.ckpt`` to resume from, or None for a fresh run.

    Raises:
        ExperimentExistsError: The directory holds a run and neither flag is set.
        FileNotFoundError: Resume asked but there is no ``last.ckpt``.
        ConfigError: Resume with a conf that changes the model, data or losses.
    """
    if resume and overwrite:
        raise ValueError("choose either resume or overwrite, not both")
    last = exp_dir / "checkpoints" / "last.ckpt"
    # A run that stopped before its first checkpoint has nothing to lose: it may be reused.
    exists = (exp_dir / "best_model.pth").exists() or any((exp_dir / "checkpoints").glob("*.ckpt"))
    if exp_dir.exists() and overwrite:
        log.warning("--overwrite yes: deleting %s", exp_dir)
        shutil.rmtree(exp_dir)
        exists = False
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume yes but {last} does not exist: nothing to resume")
        saved = exp_dir / "conf.yml"
        if saved.is_file():
            import yaml

            diff = conf_diff(yaml.safe_load(saved.read_text()), conf)
            blocking = {
                k: v for k, v in diff.items() if not any(k.startswith(p) for p in RESUMABLE_CHANGES)
            }
            if blocking:
                text = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in _triples(blocking))
                raise ConfigError(
                    f"cannot resume {exp_dir} with a different conf ({text}); use the saved "
                    f"{saved}, or a new --tag"
                )
            for key, (old, new) in diff.items():
                log.warning("resuming with %s changed: %r -> %r", key, old, new)
        return last
    if exists:
        raise ExperimentExistsError(
            f"{exp_dir} already holds an experiment. Continue it with --resume yes, replace it "
            "with --overwrite yes, or choose another --tag"
        )
    return None


def _triples(diff: dict[str, tuple[Any, Any]]):
    return [(k, a, b) for k, (a, b) in diff.items()]


def trainer_devices(gpus: str, cpu_procs: int, launch: Launch | None = None) -> dict[str, Any]:
    """Lightning accelerator/devices from ``--gpus`` and ``--cpu_procs``.

    Args:
        gpus: ``auto`` (Asteroid's default: every visible GPU, the CPU when there is none),
            GPU ids such as ``0,1``, or ``""`` / ``cpu`` for the CPU.
        cpu_procs: Processes on the CPU (>1: DDP over gloo).
        launch: The launcher (:func:`~asteroid_tdanet.recipes.launch.detect_launch`). Under
            srun or torchrun the launcher started one process per device: ``auto`` then means
            that many devices (GPUs if there are, else CPU processes), whatever ``cpu_procs``.

    Returns:
        ``{"accelerator": "gpu", "devices": [ids] or n}`` or ``{"accelerator": "cpu",
        "devices": n}``.

    Raises:
        RuntimeError: GPU ids asked but CUDA is not available, or an id that is not visible.
        ValueError: Unreadable ids, or ``cpu_procs < 1``.
    """
    text = gpus.replace(" ", "").lower()
    per_node = launch.devices_per_node if launch is not None and launch.external else None
    if text == "auto":
        gpu_ids = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        if per_node is not None:
            if gpu_ids:
                # Lightning gives each process the GPU of its local rank among these.
                if len(gpu_ids) < per_node:
                    raise RuntimeError(
                        f"{launch.launcher} started {per_node} processes on this node but it "
                        f"has {len(gpu_ids)} visible GPU(s): ask for one GPU per process "
                        "(sbatch --gpus-per-node, not --gpus-per-task)"
                    )
                return {"accelerator": "gpu", "devices": per_node}
            return {"accelerator": "cpu", "devices": per_node}
    elif text in ("", "cpu"):
        gpu_ids = []
    else:
        try:
            gpu_ids = [int(g) for g in text.split(",") if g != ""]
        except ValueError:
            raise ValueError(
                f"--gpus {gpus!r}: expected GPU ids such as 0,1, or auto, cpu or ''"
            ) from None
        if not torch.cuda.is_available():
            raise RuntimeError(f"--gpus {gpus} asked but CUDA is not available on this machine")
        visible = torch.cuda.device_count()
        missing = [g for g in gpu_ids if g >= visible]
        if missing:
            raise RuntimeError(
                f"--gpus {gpus}: GPU(s) {missing} not visible (this process sees {visible}; "
                "CUDA_VISIBLE_DEVICES renumbers them from 0)"
            )
    if gpu_ids:
        return {"accelerator": "gpu", "devices": gpu_ids}
    if per_node is not None:
        return {"accelerator": "cpu", "devices": per_node}
    if cpu_procs < 1:
        raise ValueError(f"--cpu_procs must be >= 1, got {cpu_procs}")
    return {"accelerator": "cpu", "devices": cpu_procs}


def _count(devices: dict[str, Any]) -> int:
    """Processes per node of a :func:`trainer_devices` answer."""
    return len(devices["devices"]) if isinstance(devices["devices"], list) else devices["devices"]


def launch_nodes(launch: Launch, num_nodes: int) -> int:
    """Nodes of an srun/torchrun launch; ``--num_nodes`` may only repeat it."""
    from .launch import LaunchError

    if num_nodes not in (1, launch.nodes):
        raise LaunchError(
            f"{launch.launcher} runs on {launch.nodes} node(s) but --num_nodes is {num_nodes}: "
            "leave --num_nodes at 1 (the launcher's node count is used)"
        )
    return int(launch.nodes)


def describe_devices(devices: dict[str, Any], gpus: str, num_nodes: int = 1) -> str:
    """One log line saying where training runs, and why."""
    nodes = f" per node x {num_nodes} nodes" if num_nodes > 1 else ""
    if devices["accelerator"] == "gpu":
        if isinstance(devices["devices"], int):  # under srun/torchrun: one per process
            return f"training on {devices['devices']} GPU(s){nodes}, one per process"
        names = ", ".join(f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in devices["devices"])
        how = "every visible GPU (--gpus auto)" if gpus.strip() == "auto" else f"--gpus {gpus}"
        return f"training on {len(devices['devices'])} GPU(s){nodes}: {names}; {how}"
    why = "no GPU is visible" if gpus.strip() == "auto" else f"--gpus {gpus!r} asks for the CPU"
    return f"training on the CPU ({devices['devices']} process(es){nodes}): {why}"


def check_exp_dir(exp_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """:func:`prepare_exp_dir`'s checks without its writes, for processes other than rank 0.

    They see the same files as rank 0 on the shared filesystem, so they stop with the same
    error rather than waiting for a rank 0 that has stopped. (The conf comparison of a resume is
    rank 0's alone: rank 0 stops before the process group forms, and the others' rendezvous
    then fails.)
    """
    if resume and overwrite:
        raise ValueError("choose either resume or overwrite, not both")
    last = exp_dir / "checkpoints" / "last.ckpt"
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume yes but {last} does not exist: nothing to resume")
        return last
    if not overwrite:
        exists = (exp_dir / "best_model.pth").exists() or any(
            (exp_dir / "checkpoints").glob("*.ckpt")
        )
        if exists:
            raise ExperimentExistsError(
                f"{exp_dir} already holds an experiment. Continue it with --resume yes, replace "
                "it with --overwrite yes, or choose another --tag"
            )
    return None


def apply_plan(conf: dict[str, Any], plan: BatchPlan) -> dict[str, Any]:
    """The conf with the batch plan's batch size, accumulation and learning rate."""
    out = copy.deepcopy(conf)
    out["data"]["batch_size"] = plan.batch_size
    out["training"]["accumulate_grad_batches"] = plan.accumulate
    out["optim"]["lr"] = plan.lr
    return out


def train(
    conf: dict[str, Any],
    data_dir: str | Path,
    exp_dir: str | Path,
    *,
    gpus: str = "auto",
    cpu_procs: int = 1,
    num_nodes: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress_bar: bool = True,
    callbacks: Sequence[Any] = (),
) -> Path | None:
    """Train the conf's model; write the experiment directory described in the module doc.

    Args:
        conf: Validated conf.
        data_dir: Metadata directory written by ``local/prepare_<dataset>.py``.
        exp_dir: ``exp/<tag>``.
        gpus: ``auto`` (every visible GPU, else the CPU), GPU ids ``0,1``, or ``""``/``cpu``.
        cpu_procs: Processes on CPU (>1: DDP with gloo, for tests or CPU clusters).
        num_nodes: Machines (Lightning multi-node DDP; launch once per node).
        resume: Continue from ``checkpoints/last.ckpt``.
        overwrite: Delete an existing experiment first.
        progress_bar: Show Lightning's progress bar.
        callbacks: Further Lightning callbacks.

    Returns:
        ``best_model.pth`` (on the global-zero process; None on the others).
    """
    from asteroid_tdanet.runtime import configure_cpu_process

    configure_cpu_process()
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
    from pytorch_lightning.loggers import TensorBoardLogger
    from pytorch_lightning.strategies import DDPStrategy

    from .batch import plan_batch
    from .launch import check_layout, cluster_plugins, detect_launch

    data_dir, exp_dir = Path(data_dir), Path(exp_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir} (run stage 1 first)")
    launch = detect_launch()
    devices = trainer_devices(gpus, cpu_procs, launch)
    if launch.external:
        num_nodes = launch_nodes(launch, num_nodes)
        check_layout(launch, _count(devices), num_nodes)
    world = _count(devices) * num_nodes
    rank_zero = launch.global_rank == 0
    if rank_zero:
        log.info(launch.describe())
    plan = plan_batch(conf, world)
    if rank_zero:
        log.info(plan.describe(describe_devices(devices, gpus, num_nodes)))
        for note in plan.notes:
            log.info(note)
        if plan.warning:
            log.warning(plan.warning)
    last = exp_dir / "checkpoints" / "last.ckpt"
    if launch.restart and not resume and last.is_file():
        # A requeued SLURM job (or workers restarted by torchrun) runs the same command again:
        # it continues the run it was interrupted in, never starts it over (nor --overwrite it).
        if rank_zero:
            log.warning(
                "%s restart %d: resuming from %s%s",
                launch.launcher,
                launch.restart,
                last,
                " (--overwrite ignored)" if overwrite else "",
            )
        resume, overwrite = True, False
    if rank_zero:
        # Global rank 0 alone decides about and writes the directory. With an external launcher
        # the other processes start at the same moment: they run the same read-only checks (so
        # they stop with the same error) and touch nothing; they reach the directory only after
        # joining the process group in trainer.fit, which rank 0 joins once it is prepared.
        ckpt_path = prepare_exp_dir(exp_dir, conf, resume, overwrite)
        exp_dir.mkdir(parents=True, exist_ok=True)
        dump_conf(conf, exp_dir / "conf.yml")
        log.info("experiment directory %s prepared by global rank 0", exp_dir)
    else:
        ckpt_path = check_exp_dir(exp_dir, resume, overwrite)
    child = not rank_zero
    conf = apply_plan(conf, plan)

    training = conf["training"]
    pl.seed_everything(training["seed"], workers=True, verbose=False)
    model = build_model(conf)
    train_loader, valid_loader = make_loaders(
        conf, data_dir, pin_memory=devices["accelerator"] == "gpu"
    )
    optimizer = make_optimizer(model.parameters(), conf["optim"])
    scheduler: Any = None
    if conf["scheduler"]["name"] == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=conf["scheduler"]["factor"],
            patience=conf["scheduler"]["patience"],
        )
    elif conf["scheduler"]["name"] == "cosine":
        # Stepped after every optimizer step (Asteroid's System maps "batch" to Lightning's
        # "step"), so the schedule is a function of the step count alone.
        scheduler = {
            "scheduler": torch.optim.lr_scheduler.LambdaLR(
                optimizer,
                cosine_schedule(conf["scheduler"]["warmup_steps"], training["max_steps"]),
            ),
            "interval": "batch",
        }
    system = _system_class()(
        model=model,
        optimizer=optimizer,
        loss_func=make_loss(conf["loss"]["train"]),
        valid_loss_func=make_loss(conf["loss"]["valid"]),
        train_loader=train_loader,
        val_loader=valid_loader,
        scheduler=scheduler,
        config=conf,
        history_path=exp_dir / "train_log" / "history.csv",
    )
    checkpoint = ModelCheckpoint(
        dirpath=exp_dir / "checkpoints",
        filename="{epoch}-{val_loss:.4f}",
        monitor="val_loss",
        mode="min",
        save_top_k=training["save_top_k"],
        verbose=False,
    )
    # last.ckpt after every epoch, the resume point. (Lightning's save_last=True writes it only
    # when a top-k checkpoint was written in that step: an epoch that did not improve val_loss
    # would then be lost, and a resumed run would repeat it.)
    last = ModelCheckpoint(
        dirpath=exp_dir / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
        verbose=False,
    )
    callbacks = [checkpoint, last, *callbacks]
    if progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, len(train_loader) // 50)))
    if training["early_stop_patience"] is not None:
        callbacks.append(
            EarlyStopping(monitor="val_loss", mode="min", patience=training["early_stop_patience"])
        )
    strategy: Any = "auto"
    if world > 1:
        strategy = DDPStrategy(
            find_unused_parameters=training["find_unused_parameters"],
            process_group_backend="nccl" if devices["accelerator"] == "gpu" else "gloo",
        )
    trainer = pl.Trainer(
        max_epochs=training["epochs"],
        max_time=None if training["max_minutes"] is None else {"minutes": training["max_minutes"]},
        max_steps=-1 if training["max_steps"] is None else training["max_steps"],
        callbacks=callbacks,
        default_root_dir=exp_dir,
        # System needs a logger (it crashes with logger=False).
        logger=TensorBoardLogger(
            save_dir=exp_dir, name="train_log", version="", default_hp_metric=False
        ),
        strategy=strategy,
        num_nodes=num_nodes,
        precision=training["precision"],
        gradient_clip_val=training["gradient_clip"],
        accumulate_grad_batches=training["accumulate_grad_batches"],
        log_every_n_steps=training["log_every_n_steps"],
        enable_progress_bar=progress_bar,
        enable_model_summary=not child,
        plugins=cluster_plugins(launch),
        **devices,
    )
    if ckpt_path is not None and trainer.is_global_zero:
        log.info("resuming from %s", ckpt_path)
    trainer.fit(system, ckpt_path=ckpt_path)
    if not trainer.is_global_zero:
        return None
    return finalize(exp_dir, conf, checkpoint, system.history, train_loader.dataset.get_infos())


def finalize(
    exp_dir: Path,
    conf: dict[str, Any],
    checkpoint,
    history,
    data_infos: dict[str, Any] | None = None,
) -> Path:
    """Write best_k_models.json, best_model.pth and training_curve.png after training.

    ``data_infos`` (the training set's ``get_infos()``) goes into best_model.pth as Asteroid's
    train.py stores it.
    """
    from .plots import plot_training_curve

    best_k = {str(Path(k).name): float(v) for k, v in checkpoint.best_k_models.items()}
    (exp_dir / "best_k_models.json").write_text(json.dumps(best_k, indent=2) + "\n")
    best_path = Path(checkpoint.best_model_path or exp_dir / "checkpoints" / "last.ckpt")
    if not best_path.is_file():  # best_k_models keeps names relative to a moved directory
        best_path = exp_dir / "checkpoints" / best_path.name
    if not best_path.is_file():
        raise RuntimeError(
            f"training of {exp_dir} stopped before its first epoch ended (training.max_minutes "
            "too small?): there is no checkpoint to export"
        )
    best_model = export_checkpoint(best_path, conf, exp_dir / "best_model.pth", data_infos)
    if history:
        write_history(history, exp_dir / "train_log" / "history.csv")
        plot_training_curve(history, exp_dir / "training_curve.png", title=exp_dir.name)
    return best_model


def plain_infos(infos: dict[str, Any]) -> dict[str, Any]:
    """``dataset``/``task``/``licenses`` as plain str/bool values (weights_only-loadable)."""
    return {
        "dataset": str(infos["dataset"]),
        "task": str(infos["task"]),
        "licenses": [
            {k: v if isinstance(v, bool) else str(v) for k, v in lic.items()}
            for lic in infos["licenses"]
        ],
    }


def export_checkpoint(
    ckpt: Path, conf: dict[str, Any], out: Path, data_infos: dict[str, Any] | None = None
) -> Path:
    """Turn a Lightning checkpoint into an Asteroid model file (plain values + tensors).

    Args:
        ckpt: Lightning checkpoint of a :func:`train` run.
        conf: The run's conf (rebuilds the model).
        out: Model file to write.
        data_infos: The training set's ``get_infos()`` (``dataset``, ``task``, ``licenses``),
            stored at the top level of the package as Asteroid's recipes do.

    Returns:
        ``out``.
    """
    from asteroid_tdanet.io import plain_software_versions

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = build_model(conf)
    weights = {
        k[len("model.") :]: v for k, v in state["state_dict"].items() if k.startswith("model.")
    }
    model.load_state_dict(weights)
    package = model.serialize()
    infos = package.setdefault("infos", {})
    if "software_versions" in infos:
        infos["software_versions"] = plain_software_versions(infos["software_versions"])
    infos["training"] = {
        "checkpoint": ckpt.name,
        "epoch": int(state.get("epoch", -1)),
        "global_step": int(state.get("global_step", -1)),
        "conf": conf,
    }
    if data_infos is not None:
        package.update(plain_infos(data_infos))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(package, tmp)
    tmp.replace(out)  # atomic: a kill never leaves half a model file
    return out
