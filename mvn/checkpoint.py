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

Every file written here carries the SHA-256 of its bytes (mvn/checksum.py), verified at every
load: a flipped bit, a cut or an empty file is found and named. Disk: a run's checkpoints take
up to four checkpoint sizes at the moment of a save (last.previous.bin, last.bin, best_epoch.bin
and the file being written); the free space is checked before each write.
"""
import logging
import os

import torch
from torch.nn.parallel import DistributedDataParallel

from mvn.checksum import ChecksumError, add_checksum, verify_checksum
from mvn.errors import CAPFError
from mvn.models.weights import DamagedFileError, WeightsError, load_model_weights

logger = logging.getLogger(__name__)

CHECKPOINT_FOLDER = "checkpoints"   # inside an experiment folder
BEST_NAME = "best_epoch.bin"
LAST_NAME = "last.bin"
PREVIOUS_NAME = "last.previous.bin"
CONFIG_NAME = "config.yaml"         # the resolved config of the run's first start
RESULTS_PREFIX = "best_evaluation"  # the best epoch's table(s), beside config.yaml
CHECKPOINTS_AT_A_SAVE = 4           # previous, last, best and the one being written


class CheckpointWriteError(CAPFError):
    """A checkpoint that could not be written (disk full, read-only, ...); nothing partial left."""


def atomic_save(obj, path, keep_previous=None):
    """torch.save to `path`.tmp with our checksum, then rename it to `path`: a crash never
    leaves a torn file. With `keep_previous`, the file being replaced is first given that
    second name (unless it was found damaged at the resume: the intact previous one is kept).
    Refused before anything is written when the disk has not room for it."""
    directory = os.path.dirname(path)
    check_free_space(path, estimated_bytes(obj))
    temporary = path + ".tmp"
    try:
        torch.save(obj, temporary)
        add_checksum(temporary)
    except (OSError, RuntimeError) as error:   # ENOSPC shows as "unexpected pos" from torch
        if os.path.exists(temporary):
            os.remove(temporary)
        free = _free_bytes(directory)
        raise CheckpointWriteError(
            "cannot write %s (%s)%s; the partial file was removed. %s"
            % (path, str(error).splitlines()[0],
               "" if free is None else ", %.1f MB free there" % (free / 1e6),
               what_to_do_after_a_failed_save(path))) from None
    damaged = os.path.abspath(path) in _damaged_at_resume
    if keep_previous is not None and os.path.exists(path) and not damaged:
        _keep_as_previous(path, keep_previous)
    os.replace(temporary, path)
    _damaged_at_resume.discard(os.path.abspath(path))


def what_to_do_after_a_failed_save(path):
    """The advice after a failed save: resume only where a last.bin exists to resume from (a
    run whose first save failed has none: its folder is removed, or restarts from scratch)."""
    directory = os.path.dirname(path)
    space = ("free disk space (a run's checkpoints take up to %d checkpoint sizes) or pass a "
             "writable --logdir" % CHECKPOINTS_AT_A_SAVE)
    if os.path.isfile(os.path.join(directory, LAST_NAME)):
        return "%s, then resume with --resume %s" % (space[0].upper() + space[1:],
                                                     os.path.dirname(directory) or ".")
    return ("No checkpoint of this run was complete yet, so there is nothing to resume: %s and "
            "start the run again" % space)


def estimated_bytes(obj):
    """About the size torch.save gives `obj`: its tensors' storages (each once) and a margin for
    the pickle and the zip records."""
    storages, count = {}, 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if torch.is_tensor(item):
            storage = item.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            count += 1
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return sum(storages.values()) + 512 * count + (64 << 10)


_warned_low_space = []


def check_free_space(path, needed_bytes):
    """Refuse a write that the disk cannot hold (one line: the bytes needed and free, and the
    folder); warn once when it fits but the run's checkpoints at their largest (four sizes:
    last.previous.bin, last.bin, best_epoch.bin and the one being written) will not."""
    directory = os.path.dirname(path)
    free = _free_bytes(directory)
    if free is None:
        return
    if free < needed_bytes:
        raise CheckpointWriteError(
            "not enough disk space to write %s: it needs about %.1f MB, %.1f MB are free in %s; "
            "nothing was written. %s" % (path, needed_bytes / 1e6, free / 1e6, directory,
                                         what_to_do_after_a_failed_save(path)))
    existing = {}
    for name in (LAST_NAME, PREVIOUS_NAME, BEST_NAME):
        try:
            stat = os.stat(os.path.join(directory, name))
        except OSError:
            continue
        existing[(stat.st_dev, stat.st_ino)] = stat.st_size    # hard links counted once
    later = CHECKPOINTS_AT_A_SAVE * needed_bytes - sum(existing.values())
    if free < later and not _warned_low_space:
        _warned_low_space.append(True)
        logger.warning("%s: %.1f MB free, but this run's checkpoints take up to %d x %.1f MB "
                       "there at a save (last.previous.bin, last.bin, best_epoch.bin and the one "
                       "being written): about %.1f MB more will be needed; a later save can fail "
                       "unless space is freed", directory, free / 1e6, CHECKPOINTS_AT_A_SAVE,
                       needed_bytes / 1e6, later / 1e6)


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


class ResumeRefused(CAPFError):
    """No intact checkpoint to resume, in a folder whose results starting over would replace."""


_damaged_at_resume = set()   # abspaths of damaged last.bin files: never kept as previous


def run_results(folder):
    """What a run left in `folder` that starting it over would replace: the files of its
    checkpoints/ (partial .tmp files aside) and its best_evaluation tables. Names relative to
    `folder`; empty for a run that never finished a save (config.yaml and train.log aside)."""
    found = []
    directory = os.path.join(folder, CHECKPOINT_FOLDER)
    if os.path.isdir(directory):
        found += [os.path.join(CHECKPOINT_FOLDER, name) for name in sorted(os.listdir(directory))
                  if not name.endswith(".tmp")]
    found += [name for name in sorted(os.listdir(folder)) if name.startswith(RESULTS_PREFIX)]
    return found


def _reason(error):
    """The short why of a DamagedFileError (without its path and advice)."""
    return getattr(error, "reason", None) or str(error).splitlines()[0]


def resume_state(model, optimizer, folder, checkpoint_file=None, start_over=False):
    """Load the newest intact `last.bin` of `folder` (or `last.previous.bin` when `last.bin`
    is missing or damaged, with a warning naming both) into the model and optimiser; returns
    (epoch, step, best P1, history, progress), or None to start from the beginning: when the
    folder has no checkpoint and no results yet (a run stopped before its first save), or with
    `start_over` (--start-over). When neither file is intact and the folder holds results
    (run_results), ResumeRefused: one line naming the damaged files and --start-over, and
    nothing touched. With `checkpoint_file` (--resume FILE), that file exactly, or a
    WeightsError."""
    if checkpoint_file is not None:
        return _load_resumable(model, optimizer, checkpoint_file, "--resume %s: " % checkpoint_file)
    directory = os.path.join(folder, CHECKPOINT_FOLDER)
    damaged = []   # (path, why)
    for name in (LAST_NAME, PREVIOUS_NAME):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        try:
            state = _load_resumable(model, optimizer, path)
        except DamagedFileError as error:
            damaged.append((path, _reason(error)))
            continue
        if damaged:
            logger.warning("%s is damaged (%s): resuming from %s, the save before it; the next "
                           "save replaces the damaged file and keeps %s until then",
                           damaged[0][0], damaged[0][1], path, name)
            _damaged_at_resume.add(os.path.abspath(damaged[0][0]))
        _check_the_others(directory, [path] + [p for p, _ in damaged], state[2])
        return state
    results = run_results(folder)
    if not damaged and not results:
        return None
    listed = ("; ".join("%s is damaged (%s)" % item for item in damaged)
              or "%s and %s are missing" % (LAST_NAME, PREVIOUS_NAME))
    if start_over:
        logger.warning("no intact checkpoint in %s (%s): starting it from the beginning as "
                       "--start-over asks; %s will be replaced", folder, listed,
                       ", ".join(results))
        _damaged_at_resume.update(os.path.abspath(path) for path, _ in damaged)
        return None
    raise ResumeRefused(
        "no intact checkpoint to resume in %s: %s. The folder holds this run's results (%s), "
        "which starting over would replace; they are left as they are: restore an intact "
        "%s/%s, or pass --start-over to train this folder from the beginning"
        % (folder, listed, ", ".join(results), CHECKPOINT_FOLDER, LAST_NAME))


def _load_resumable(model, optimizer, path, prefix=""):
    """(epoch, step, best P1, history, progress) of the checkpoint at `path`, loaded into the
    model and optimiser."""
    try:
        checkpoint = load_model_weights(model, path)
    except WeightsError as error:
        if not prefix:
            raise
        raise type(error)(prefix + str(error).splitlines()[0]) from None
    missing = [k for k in ("epoch", "optimizer") if k not in checkpoint]
    if missing:
        raise WeightsError("%s cannot be resumed: it lacks %s" % (path, ", ".join(missing)))
    optimizer.load_state_dict(checkpoint["optimizer"])
    logger.info("resuming from %s: epoch %d, step %d", path, checkpoint["epoch"],
                checkpoint.get("step", 0))
    return (checkpoint["epoch"], checkpoint.get("step", 0),
            checkpoint.get("best_p1", float("inf")), list(checkpoint.get("history", [])),
            dict(checkpoint.get("progress", {})))


def _check_the_others(directory, read, best_p1):
    """At a resume: last.previous.bin and best_epoch.bin, unless among the paths just `read`
    (or hard links of them), verified too (their checksums only); a damaged one is named in a
    warning."""
    seen = set()
    for path in read:
        stat = os.stat(path)
        seen.add((stat.st_dev, stat.st_ino))
    for name in (PREVIOUS_NAME, BEST_NAME):
        path = os.path.join(directory, name)
        try:
            stat = os.stat(path)
            if path in read or (stat.st_dev, stat.st_ino) in seen:
                continue
            verify_checksum(path)
        except FileNotFoundError:
            continue
        except (ChecksumError, OSError) as error:
            if name == PREVIOUS_NAME:
                logger.warning("%s is damaged (%s); %s is intact and used, and the next save "
                               "replaces it", path, error, LAST_NAME)
            else:
                logger.warning("%s is damaged (%s): the run continues, and replaces it only "
                               "when an epoch beats the best P1 so far (%.1f mm); --eval "
                               "refuses it until then", path, error, best_p1)


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
