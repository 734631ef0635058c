"""CA-PF checkpoints: the released format, atomic writes, and resuming a run where it stopped.

- `best_epoch.bin` (the released format, docs/fidelity.md "Training loop"): {'epoch': 1-based
  epoch, 'lr': the lr used in that epoch, 'model': state dict with DDP's `module.` prefixes,
  'optimizer': the AdamW state dict}. The published file loads with
  `mvn.models.weights.load_model_weights`, which strips the prefixes.
- `last.bin`: the same keys plus the position to continue from and what the loop has gathered:
  'epoch' (0-based epoch to continue; at an epoch's end, the number of finished epochs),
  'step' (steps of that epoch already done), 'progress' (that epoch's loss sums so far),
  'best_p1' (mm, rounded as the best-epoch rule compares it) and 'history' (one dict per finished
  epoch). Written every `train.checkpoint_every_steps` steps and at every epoch's end. There is
  no RNG state in it: every step seeds its generators from (seed, epoch, step, rank)
  (mvn.engine.seed_step), so a resumed run draws what the uninterrupted one would have.

Writes go to a temporary file that is renamed into place; the previous `last.bin` is kept as
`last.previous.bin` (a second name of the same file, so `last.bin` exists at every instant: a
kill -9 at any moment leaves a complete one), and a damaged `last.bin` falls back to it.
A failed write (disk full, read-only) removes its partial file and says so in one line.
"""
import logging
import os

import torch
from torch.nn.parallel import DistributedDataParallel

from mvn.errors import CAPFError
from mvn.models.weights import WeightsError, load_model_weights

logger = logging.getLogger(__name__)

CHECKPOINT_FOLDER = "checkpoints"   # inside an experiment folder
BEST_NAME = "best_epoch.bin"
LAST_NAME = "last.bin"
PREVIOUS_NAME = "last.previous.bin"
CONFIG_NAME = "config.yaml"         # the resolved config of the run's first start


class CheckpointWriteError(CAPFError):
    """A checkpoint that could not be written (disk full, read-only, ...); nothing partial left."""


def atomic_save(obj, path, keep_previous=None):
    """torch.save to `path`.tmp, then rename it to `path`: a crash never leaves a torn file.
    With `keep_previous`, the file being replaced is first renamed to that path."""
    temporary = path + ".tmp"
    try:
        torch.save(obj, temporary)
    except (OSError, RuntimeError) as error:   # ENOSPC shows as "unexpected pos" from torch
        if os.path.exists(temporary):
            os.remove(temporary)
        free = _free_bytes(os.path.dirname(path))
        raise CheckpointWriteError(
            "cannot write %s (%s)%s; the partial file was removed. Free disk space or pass a "
            "writable --logdir, then resume with --resume"
            % (path, str(error).splitlines()[0],
               "" if free is None else ", %.1f MB free there" % (free / 1e6))) from None
    if keep_previous is not None and os.path.exists(path):
        _keep_as_previous(path, keep_previous)
    os.replace(temporary, path)


_warned_no_hard_links = []


def _keep_as_previous(path, previous):
    """Give the file at `path` the second name `previous` (a hard link, renamed into place), so
    that `path` never disappears. Where the file system has no hard links, `path` is renamed:
    a kill between that and the next rename leaves only `previous`, which resuming reads."""
    link = previous + ".tmp"
    if os.path.lexists(link):
        os.remove(link)
    try:
        os.link(path, link)
    except OSError as error:
        if not _warned_no_hard_links:
            _warned_no_hard_links.append(True)
            logger.warning("no hard links in %s (%s): %s is renamed to %s before each save",
                           os.path.dirname(path), error.strerror, os.path.basename(path),
                           os.path.basename(previous))
        os.replace(path, previous)
        return
    os.replace(link, previous)


def _free_bytes(folder):
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def model_state_with_module_prefix(model):
    """The DDP-style state dict (`module.` keys) the released code writes, with or without DDP."""
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    return {"module." + k: v for k, v in raw.state_dict().items()}


def save_best(folder, model, optimizer, epochs_done, lr):
    """`best_epoch.bin` after epoch `epochs_done` (1-based), in the released format."""
    directory = os.path.join(folder, CHECKPOINT_FOLDER)
    os.makedirs(directory, exist_ok=True)
    atomic_save({"epoch": epochs_done, "lr": lr, "model": model_state_with_module_prefix(model),
                 "optimizer": optimizer.state_dict()}, os.path.join(directory, BEST_NAME))


def save_last(folder, model, optimizer, position, lr, best_p1, history, progress=None):
    """`last.bin`: everything to continue at `position` = (epoch, step) (see the module doc)."""
    directory = os.path.join(folder, CHECKPOINT_FOLDER)
    os.makedirs(directory, exist_ok=True)
    epoch, step = position
    atomic_save({"epoch": epoch, "step": step, "lr": lr,
                 "model": model_state_with_module_prefix(model),
                 "optimizer": optimizer.state_dict(), "best_p1": best_p1, "history": history,
                 "progress": progress or {}},
                os.path.join(directory, LAST_NAME),
                keep_previous=os.path.join(directory, PREVIOUS_NAME))


def is_experiment_folder(folder):
    """True for a folder this project made for a run (it holds the run's config.yaml)."""
    return os.path.isfile(os.path.join(folder, CONFIG_NAME))


def experiment_folder_of(path):
    """The experiment folder a --resume PATH names (the folder itself, or its
    checkpoints/last.bin); refuses anything else before any file is touched."""
    folder = path
    if os.path.isfile(path):
        folder = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(folder) or not is_experiment_folder(folder):
        raise WeightsError("--resume %s: not an experiment folder of this project (no %s in %s); "
                           "pass the folder train.py made (<logdir>/<title>@<date-time>) or its "
                           "%s/%s" % (path, CONFIG_NAME, folder, CHECKPOINT_FOLDER, LAST_NAME))
    return folder


def remove_partial_files(folder):
    """Temporary files a killed save left in the checkpoint folder."""
    directory = os.path.join(folder, CHECKPOINT_FOLDER)
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.endswith(".tmp"):
                os.remove(os.path.join(directory, name))


def resume_state(model, optimizer, folder, checkpoint_file=None):
    """Load the newest complete `last.bin` of `folder` (or `last.previous.bin` when `last.bin`
    is missing or damaged) into the model and optimiser; returns (epoch, step, best P1, history,
    progress), or None when the folder has no complete checkpoint yet (start from the beginning).
    With `checkpoint_file` (--resume FILE), that file exactly, or a WeightsError."""
    directory = os.path.join(folder, CHECKPOINT_FOLDER)
    paths = ([checkpoint_file] if checkpoint_file is not None else
             [os.path.join(directory, name) for name in (LAST_NAME, PREVIOUS_NAME)])
    for path in paths:
        if not os.path.isfile(path):
            continue
        try:
            checkpoint = load_model_weights(model, path)
        except WeightsError as error:
            if checkpoint_file is not None:
                raise WeightsError("--resume %s: %s" % (path, str(error).splitlines()[0])) \
                    from None
            logger.warning("%s is damaged (%s); trying the previous checkpoint",
                           path, str(error).splitlines()[0])
            continue
        missing = [k for k in ("epoch", "optimizer") if k not in checkpoint]
        if missing:
            raise WeightsError("%s cannot be resumed: it lacks %s" % (path, ", ".join(missing)))
        optimizer.load_state_dict(checkpoint["optimizer"])
        logger.info("resuming from %s: epoch %d, step %d", path, checkpoint["epoch"],
                    checkpoint.get("step", 0))
        return (checkpoint["epoch"], checkpoint.get("step", 0),
                checkpoint.get("best_p1", float("inf")), list(checkpoint.get("history", [])),
                dict(checkpoint.get("progress", {})))
    return None


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
    raise WeightsError("checkpoint %s not found; pass --checkpoint PATH, or put the published "
                       "file there (README)" % path)
