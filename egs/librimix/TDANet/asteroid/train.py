"""Train TDANet on Libri2Mix the way Asteroid's LibriMix recipes train their models.

Every key of local/conf.yml is a flag (``python train.py --exp_dir exp/x --n_blocks 8``); run.sh
passes them. Writes ``EXP_DIR/{conf.yml,checkpoints/,best_k_models.json,best_model.pth}``.
"""

import argparse
import json
import os

import pytorch_lightning as pl
import torch
import yaml
from asteroid.data import LibriMix
from asteroid.engine.optimizers import make_optimizer
from asteroid.engine.system import System
from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr, pairwise_neg_snr
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader

from asteroid_tdanet import TDANet

# Flags that are not in local/conf.yml; they end up in conf["main_args"].
parser = argparse.ArgumentParser()
parser.add_argument("--exp_dir", default="exp/tmp", help="where the experiment is written")

# The losses of asteroid-tdanet's recipe (conf/tdanet.yml): permutation-invariant negative SNR to
# train, negative SI-SDR for validation.
train_loss_func = PITLossWrapper(pairwise_neg_snr, pit_from="pw_mtx")
val_loss_func = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")


class TDANetSystem(System):
    """Asteroid's System, validated with its own loss: our recipe trains on negative SNR and
    monitors negative SI-SDR (``val_loss``) for the learning rate, early stopping and checkpoints.
    """

    def __init__(self, *args, val_loss_func, **kwargs):
        super().__init__(*args, **kwargs)
        self.val_loss_func = val_loss_func

    def validation_step(self, batch, batch_nb):
        inputs, targets = batch
        loss = self.val_loss_func(self(inputs), targets)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)


def main(conf):
    data = conf["data"]

    def librimix(csv_dir):
        return LibriMix(
            csv_dir=csv_dir,
            task=data["task"],
            sample_rate=data["sample_rate"],
            n_src=data["n_src"],
            segment=data["segment"],
        )

    train_set, val_set = librimix(data["train_dir"]), librimix(data["valid_dir"])
    training = conf["training"]
    train_loader = DataLoader(
        train_set,
        shuffle=True,
        batch_size=training["batch_size"],
        num_workers=training["num_workers"],
        drop_last=True,
    )
    val_loader = DataLoader(
        val_set,
        shuffle=False,
        batch_size=training["batch_size"],
        num_workers=training["num_workers"],
        drop_last=True,
    )

    model_args = {**conf["filterbank"], **conf["masknet"]}
    model = TDANet(n_src=data["n_src"], sample_rate=data["sample_rate"], **model_args)
    optimizer = make_optimizer(model.parameters(), **conf["optim"])
    scheduler = None
    if training["half_lr"]:
        scheduler = ReduceLROnPlateau(optimizer=optimizer, factor=0.5, patience=15)
    # The conf next to the model: eval.py and Asteroid's publisher read it.
    exp_dir = conf["main_args"]["exp_dir"]
    os.makedirs(exp_dir, exist_ok=True)
    with open(os.path.join(exp_dir, "conf.yml"), "w") as outfile:
        yaml.safe_dump(conf, outfile)

    system = TDANetSystem(
        model=model,
        loss_func=train_loss_func,
        val_loss_func=val_loss_func,
        optimizer=optimizer,
        train_loader=train_loader,
        val_loader=val_loader,
        scheduler=scheduler,
        config=conf,
    )

    checkpoint = ModelCheckpoint(
        os.path.join(exp_dir, "checkpoints"), monitor="val_loss", mode="min", save_top_k=5
    )
    callbacks = [checkpoint]
    if training["early_stop"]:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=30, verbose=True))
    trainer = pl.Trainer(
        max_epochs=training["epochs"],
        callbacks=callbacks,
        default_root_dir=exp_dir,
        accelerator="auto",  # every visible GPU (run.sh's --id sets CUDA_VISIBLE_DEVICES)
        devices="auto",
        gradient_clip_val=training["gradient_clip"],
    )
    trainer.fit(system)

    best_k = {k: v.item() for k, v in checkpoint.best_k_models.items()}
    with open(os.path.join(exp_dir, "best_k_models.json"), "w") as f:
        json.dump(best_k, f, indent=0)

    state_dict = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    system.load_state_dict(state_dict=state_dict["state_dict"])
    system.cpu()
    to_save = system.model.serialize()
    to_save.update(train_set.get_infos())  # dataset, task, licences: Asteroid's publisher fields
    torch.save(to_save, os.path.join(exp_dir, "best_model.pth"))


if __name__ == "__main__":
    from pprint import pprint

    from asteroid.utils import parse_args_as_dict, prepare_parser_from_dict

    # Each top-level key of the conf becomes a group of flags, parsed back into nested dicts.
    with open("local/conf.yml") as f:
        def_conf = yaml.safe_load(f)
    parser = prepare_parser_from_dict(def_conf, parser=parser)
    arg_dic, plain_args = parse_args_as_dict(parser, return_plain_args=True)
    pprint(arg_dic)
    main(arg_dic)
