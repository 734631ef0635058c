"""An experiment folder and what is written in it besides checkpoints: the folder itself (one
per run, exclusive), its logging (console + train.log), and the config records (config.yaml,
config.resume-<n>.yaml). The checkpoint files are in mvn/checkpoint.py.
"""
import fcntl
import logging
import os
import shutil
import socket
import sys
import time

from mvn.checkpoint import CONFIG_NAME, experiment_folder_of, is_experiment_folder
from mvn.config import config_to_yaml
from mvn.distributed import broadcast_object
from mvn.errors import CAPFError

logger = logging.getLogger(__name__)
ROOT_LOGGER = "mvn"  # every module logs under it; setup_logging configures it once
LOCK_NAME = "run.lock"  # held by the run training in a folder (lock_run_folder)


def setup_logging(folder, processes):
    """Messages of every `mvn.*` logger: console and `folder/train.log` on rank 0; errors only
    on the other ranks (their warnings would repeat rank 0's). With several processes each line
    says which node and rank wrote it. Returns the handlers to close."""
    root = logging.getLogger(ROOT_LOGGER)
    close_logging()
    root.setLevel(logging.INFO if processes.is_main else logging.ERROR)
    root.propagate = False
    who = " [%s rank %d]" % (processes.node, processes.rank) if processes.distributed else ""
    formatter = logging.Formatter("%(asctime)s" + who + " %(levelname)s %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler()]
    if processes.is_main and folder:
        handlers.append(logging.FileHandler(os.path.join(folder, "train.log")))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    return handlers


def close_logging():
    """Detach and close the handlers setup_logging added (train.log is closed, not leaked)."""
    root = logging.getLogger(ROOT_LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def make_experiment_folder(logdir, name, processes):
    """Create logdir/<name> for a new run, exclusively: when it exists (another run started in
    the same second), '-2', '-3', ... is appended. Rank 0 creates it; every rank gets its path."""
    folder = None
    if processes.is_main:
        try:
            os.makedirs(logdir, exist_ok=True)
            for attempt in range(1, 1000):
                folder = os.path.join(logdir, name if attempt == 1 else "%s-%d" % (name, attempt))
                try:
                    os.mkdir(folder)
                    break
                except FileExistsError:
                    continue
        except OSError as error:
            raise CAPFError("cannot create the experiment folder %s under --logdir %s (%s); "
                            "pass a --logdir that is a writable folder"
                            % (name, logdir, error.strerror or error)) from None
    return broadcast_object(folder, processes)


def default_experiment_name(title, suffix=""):
    return "%s%s@%s" % (title, suffix, time.strftime("%Y%m%d-%H%M%S"))


def write_config(folder, config, name=CONFIG_NAME):
    with open(os.path.join(folder, name), "w") as f:
        f.write(config_to_yaml(config))


def record_config_change(folder, config):
    """On a resume: the first start's config.yaml is kept; options that differ from it are
    written to config.resume-<n>.yaml (what is in effect from then on) and logged."""
    with open(os.path.join(folder, CONFIG_NAME)) as f:
        first = f.read()
    now = config_to_yaml(config)
    if now == first:
        return None
    n = 1
    while os.path.exists(os.path.join(folder, "config.resume-%d.yaml" % n)):
        n += 1
    name = "config.resume-%d.yaml" % n
    write_config(folder, config, name)
    before = set(first.splitlines())
    changed = [line.strip() for line in now.splitlines() if line not in before]
    logger.warning("resumed with other options than the run started with: %s (in effect from "
                   "now on; recorded in %s, the first start's %s is kept)",
                   ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else ""), name,
                   CONFIG_NAME)
    return name


def check_name(name):
    """--name is one folder inside --logdir: no path separators, not '.' or '..'."""
    if name is not None and (name in ("", ".", "..") or os.sep in name
                             or (os.altsep and os.altsep in name)):
        raise CAPFError("--name %r must be a plain folder name (it names a folder inside "
                        "--logdir)" % name)


def lock_run_folder(folder, processes):
    """Hold the run lock of `folder` for the life of this run: one run per experiment folder.
    Rank 0 takes an exclusive flock on folder/run.lock, which the kernel releases when the
    process ends (a kill -9 leaves no stale lock), and writes who holds it there. A second run
    on the folder is refused on every rank with one line naming the first. Returns the lock's
    open file (close it to release the lock), None on the other ranks."""
    handle, holder = None, None
    if processes.is_main:
        handle = open(os.path.join(folder, LOCK_NAME), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that wrote nothing yet"
            handle.close()
            handle = None
        else:
            handle.seek(0)
            handle.truncate()
            handle.write("pid %d on %s since %s: %s\n" % (
                os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S"),
                " ".join(sys.argv)))
            handle.flush()
    holder = broadcast_object(holder, processes)
    if holder is not None:
        raise CAPFError("%s is being trained by another run (%s): one run per experiment "
                        "folder; wait for it to end or stop it, or choose another --name"
                        % (folder, holder))
    return handle


def open_run_folder(logdir, config, processes, resume=None, name=None):
    """(experiment folder, resuming?, its run lock) for fit: a new folder (exclusive; `name` or
    <title>@<date-time>), the folder --resume names (refused unless it is an experiment folder),
    or with resume='auto' the folder `name`, continued when it exists, else started. The folder
    is locked (lock_run_folder) before anything in it is read or written."""
    check_name(name)
    if resume == "auto":
        if not name:
            raise CAPFError("--resume auto continues the experiment folder that --name names: "
                            "pass --name NAME (the same on every restart)")
        folder = os.path.join(logdir, name)
        if processes.is_main:
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as error:
                raise CAPFError("cannot create the experiment folder %s (%s); pass a writable "
                                "--logdir" % (folder, error.strerror or error)) from None
        lock = lock_run_folder(folder, processes)
        resuming = is_experiment_folder(folder)
        if not resuming and processes.is_main and set(os.listdir(folder)) - {LOCK_NAME}:
            lock.close()
            raise CAPFError("--resume auto: %s exists but is not an experiment folder of this "
                            "project (no %s); choose another --name" % (folder, CONFIG_NAME))
        return folder, broadcast_object(resuming, processes), lock
    if resume:
        folder = experiment_folder_of(resume)
        return folder, True, lock_run_folder(folder, processes)
    folder = make_experiment_folder(logdir, name or default_experiment_name(config.title),
                                    processes)
    return folder, False, lock_run_folder(folder, processes)


def abandon_folder(folder, processes):
    """A new run failed before its first checkpoint: remove its folder (no empty folders)."""
    if not processes.is_main or folder is None:
        return
    checkpoints = os.path.join(folder, "checkpoints")
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
        return
    close_logging()
    shutil.rmtree(folder, ignore_errors=True)
