"""An experiment folder and what is written in it besides checkpoints: the folder itself (one
per run, exclusive), its logging (console + train.log), and the config records (config.yaml,
config.resume-<n>.yaml). The checkpoint files are in mvn/checkpoint.py.
"""
import logging
import os
import shutil
import time

from mvn.checkpoint import CONFIG_NAME, experiment_folder_of, is_experiment_folder
from mvn.config import config_to_yaml
from mvn.distributed import broadcast_object
from mvn.errors import CAPFError

logger = logging.getLogger(__name__)
ROOT_LOGGER = "mvn"  # every module logs under it; setup_logging configures it once


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


def open_run_folder(logdir, config, processes, resume=None, name=None):
    """(experiment folder, resuming?) for fit: a new folder (exclusive; `name` or
    <title>@<date-time>), the folder --resume names (refused unless it is an experiment folder),
    or with resume='auto' the folder `name`, continued when it exists, else started."""
    if resume == "auto":
        if not name:
            raise CAPFError("--resume auto continues the experiment folder that --name names: "
                            "pass --name NAME (the same on every restart)")
        candidate = os.path.join(logdir, name)
        resuming = is_experiment_folder(candidate)
        if not resuming and processes.is_main:
            try:
                os.makedirs(candidate, exist_ok=True)
            except OSError as error:
                raise CAPFError("cannot create the experiment folder %s (%s); pass a writable "
                                "--logdir" % (candidate, error.strerror or error)) from None
            if os.listdir(candidate):
                raise CAPFError("--resume auto: %s exists but is not an experiment folder of "
                                "this project (no %s); choose another --name"
                                % (candidate, CONFIG_NAME))
        return candidate, broadcast_object(resuming, processes)
    if resume:
        return experiment_folder_of(resume), True
    return make_experiment_folder(logdir, name or default_experiment_name(config.title),
                                  processes), False


def abandon_folder(folder, processes):
    """A new run failed before its first checkpoint: remove its folder (no empty folders)."""
    if not processes.is_main or folder is None:
        return
    checkpoints = os.path.join(folder, "checkpoints")
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
        return
    close_logging()
    shutil.rmtree(folder, ignore_errors=True)
