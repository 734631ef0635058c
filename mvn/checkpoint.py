"""CA-PF checkpoints: the released format, atomic writes, and resuming a run.

- `best_epoch.bin` (the released format, docs/fidelity.md "Training loop"): {'epoch': 1-based
  epoch, 'lr': the lr used in that epoch, 'model': state dict with DDP's `module.` prefixes,
  'optimizer': the AdamW state dict}. The published file loads with
  `mvn.models.weights.load_model_weights`, which strips the prefixes.
- `last.bin`: the same keys plus what a resume needs: 'best_p1' (mm, rounded as the best-epoch
  rule compares it) and 'history' (one dict per finished epoch). 'epoch' is the number of
  finished epochs, i.e. the 0-based epoch to run next. There is no RNG state in it: every epoch
  seeds its generators from (seed, epoch, rank) (mvn.engine.seed_epoch), so a resumed run draws
  what the uninterrupted one would have.

Both are written to a temporary file and renamed: a crash never leaves a torn checkpoint.
"""
import os

import torch
from torch.nn.parallel import DistributedDataParallel

from mvn.models.weights import WeightsError, load_model_weights

CHECKPOINT_FOLDER = "checkpoints"   # inside an experiment folder
BEST_NAME = "best_epoch.bin"
LAST_NAME = "last.bin"


def atomic_save(obj, path):
    """torch.save to a temporary file, then rename: a crash never leaves a torn checkpoint."""
    temporary = path + ".tmp"
    torch.save(obj, temporary)
    os.replace(temporary, path)


def model_state_with_module_prefix(model):
    """The DDP-style state dict (`module.` keys) the released code writes, with or without DDP."""
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    return {"module." + k: v for k, v in raw.state_dict().items()}


def save_checkpoints(folder, model, optimizer, epochs_done, lr, best_p1, history, is_best):
    """After epoch `epochs_done` (1-based) of a run in experiment `folder`: `best_epoch.bin` when
    the epoch is the best, and `last.bin` always."""
    directory = os.path.join(folder, CHECKPOINT_FOLDER)
    os.makedirs(directory, exist_ok=True)
    state = model_state_with_module_prefix(model)
    released = {"epoch": epochs_done, "lr": lr, "model": state,
                "optimizer": optimizer.state_dict()}
    if is_best:
        atomic_save(released, os.path.join(directory, BEST_NAME))
    atomic_save(dict(released, best_p1=best_p1, history=history),
                os.path.join(directory, LAST_NAME))


def find_resume_checkpoint(path):
    """--resume takes last.bin itself or the experiment folder holding checkpoints/last.bin."""
    candidate = os.path.join(path, CHECKPOINT_FOLDER, LAST_NAME) if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise WeightsError("nothing to resume: %s not found (pass the experiment folder or its "
                           "%s/%s)" % (candidate, CHECKPOINT_FOLDER, LAST_NAME))
    return candidate


def resume_state(model, optimizer, path):
    """Load `last.bin` at `path` into the model and optimiser; returns (epochs done, best P1,
    history)."""
    checkpoint = load_model_weights(model, path)
    missing = [k for k in ("epoch", "optimizer") if k not in checkpoint]
    if missing:
        raise WeightsError("%s cannot be resumed: it lacks %s (a best_epoch.bin? resume from "
                           "the experiment folder's %s/%s)"
                           % (path, ", ".join(missing), CHECKPOINT_FOLDER, LAST_NAME))
    optimizer.load_state_dict(checkpoint["optimizer"])
    return (checkpoint["epoch"], checkpoint.get("best_p1", float("inf")),
            list(checkpoint.get("history", [])))


def find_checkpoint(path, backbone_type):
    """`path`, or the released `best_epoch_<backbone>.bin` beside it when `path` is missing."""
    if os.path.isfile(path):
        return path
    directory, name = os.path.split(path)
    if name == BEST_NAME:
        alternative = os.path.join(directory, "best_epoch_%s.bin" % backbone_type)
        if os.path.isfile(alternative):
            return alternative
        raise WeightsError("checkpoint %s not found (nor %s); pass --checkpoint PATH or put the "
                           "published best_epoch.bin in checkpoint/" % (path, alternative))
    raise WeightsError("checkpoint %s not found; pass --checkpoint PATH" % path)
