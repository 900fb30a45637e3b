"""The effective batch of a run, and how a conf keeps the one its learning rate was set for.

The effective batch is ``data.batch_size x processes (GPUs x nodes) x
training.accumulate_grad_batches``. A conf's learning rate was tuned for one effective batch,
``training.reference_batch`` (the TDANet confs: the authors' 1 per GPU on 4 GPUs = 4). When the
devices of a run give another effective batch, ``training.batch_rule`` says what to do:

* ``accumulate``: change ``accumulate_grad_batches`` so the effective batch stays the reference
  (1 GPU, batch 1: accumulate 4 batches). Possible when ``batch_size x processes`` divides the
  reference.
* ``per_device``: change ``data.batch_size`` instead (1 GPU: batch 4 on it); possible when
  ``processes x accumulate_grad_batches`` divides the reference.
* ``scale_lr``: keep the batch and scale the learning rate linearly with it (Goyal et al. 2017,
  "Accurate, large minibatch SGD"): ``lr x effective / reference``.
* ``none``: keep everything.

Whenever the effective batch still differs from the reference (``none``, or a rule that cannot
be met), the log warns and gives the linearly scaled learning rate to use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BATCH_RULES = ("accumulate", "per_device", "scale_lr", "none")


@dataclass(frozen=True)
class BatchPlan:
    """Per-device batch, accumulation and learning rate of a run.

    Attributes:
        batch_size: Examples per process and step.
        accumulate: Batches accumulated per optimizer step.
        lr: Learning rate.
        processes: Processes (devices x nodes).
        reference: The conf's ``training.reference_batch`` (None: not stated).
        notes: What was changed and why (info lines).
        warning: Set when the effective batch differs from the reference.
    """

    batch_size: int
    accumulate: int
    lr: float
    processes: int
    reference: int | None
    notes: list[str] = field(default_factory=list)
    warning: str | None = None

    @property
    def effective(self) -> int:
        """Examples per optimizer step over all processes."""
        return self.batch_size * self.processes * self.accumulate

    def describe(self, devices: str) -> str:
        """The log line: devices, world size, per-device and effective batch."""
        ref = "" if self.reference is None else f" (reference {self.reference})"
        return (
            f"{devices}; world size {self.processes}; per-device batch {self.batch_size} x "
            f"accumulate {self.accumulate} -> effective batch {self.effective}{ref}; "
            f"lr {self.lr:g}"
        )


def plan_batch(conf: dict[str, Any], processes: int) -> BatchPlan:
    """Apply ``training.batch_rule`` for a run on ``processes`` processes.

    Args:
        conf: Validated conf.
        processes: Training processes (GPUs x nodes, or CPU processes).

    Returns:
        The plan; the conf itself is not changed (``conf.yml`` keeps what the user wrote, so a
        run resumed on other devices applies the rule again).
    """
    training, data = conf["training"], conf["data"]
    batch, accumulate = data["batch_size"], training["accumulate_grad_batches"]
    lr = conf["optim"]["lr"]
    reference, rule = training["reference_batch"], training["batch_rule"]
    notes: list[str] = []
    if reference is None or batch * processes * accumulate == reference:
        return BatchPlan(batch, accumulate, lr, processes, reference)
    effective = batch * processes * accumulate
    why = ""
    if rule == "accumulate":
        if reference % (batch * processes) == 0:
            new = reference // (batch * processes)
            notes.append(
                f"training.batch_rule accumulate: accumulate_grad_batches {accumulate} -> {new} "
                f"keeps the reference effective batch {reference} on {processes} process(es)"
            )
            return BatchPlan(batch, new, lr, processes, reference, notes)
        why = (
            f"training.batch_rule accumulate cannot keep it: batch_size {batch} x {processes} "
            f"process(es) does not divide {reference}"
        )
    elif rule == "per_device":
        if data["segment"] is not None and reference % (processes * accumulate) == 0:
            new = reference // (processes * accumulate)
            notes.append(
                f"training.batch_rule per_device: data.batch_size {batch} -> {new} keeps the "
                f"reference effective batch {reference} on {processes} process(es)"
            )
            return BatchPlan(new, accumulate, lr, processes, reference, notes)
        if data["segment"] is None:
            reason = "whole utterances (data.segment null) need batch_size 1"
        else:
            reason = (
                f"{processes} process(es) x accumulate {accumulate} does not divide {reference}"
            )
        why = f"training.batch_rule per_device cannot keep it: {reason}"
    elif rule == "scale_lr":
        new_lr = lr * effective / reference
        notes.append(
            f"training.batch_rule scale_lr: effective batch {effective} instead of {reference}: "
            f"optim.lr {lr:g} -> {new_lr:g} (linear scaling)"
        )
        return BatchPlan(batch, accumulate, new_lr, processes, reference, notes)
    else:
        why = "training.batch_rule is none"
    warning = (
        f"the effective batch is {effective} (batch_size {batch} x {processes} process(es) x "
        f"accumulate {accumulate}) but this conf's learning rate was set for "
        f"training.reference_batch {reference} ({why}). optim.lr stays {lr:g}; the linear "
        f"scaling rule recommends --optim.lr {lr * effective / reference:g}, which "
        "training.batch_rule scale_lr applies"
    )
    return BatchPlan(batch, accumulate, lr, processes, reference, notes, warning)
