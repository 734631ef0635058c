"""Training and evaluation: build, one training step, one epoch, evaluate, fit.

Read top to bottom. What the loop reproduces of the released code (lr, clipping, best epoch,
checkpoint format) is listed in docs/fidelity.md. Around it: the benchmark (dataset, protocol,
skeleton) through mvn.benchmarks, processes and sharding in mvn/distributed.py, the experiment
folder and its logs in mvn/experiment.py, the checkpoint files in mvn/checkpoint.py. train.py
only parses the command line; the recipe's model, optimiser, lr and precision are in
mvn/recipe.py. `fit` and `run_evaluation` run a `Task` (plain functions: model,
optimiser, step, evaluation, epoch record): CA-PF's (CAPF_TASK, at the end of this file) or the
2D detector stage's (mvn/detector.py), with the same run machinery.
"""
import logging
import math
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from mvn import benchmarks, vis
from mvn.batch import predict_pose, prepare_batch
from mvn.checkpoint import remove_partial_files, resume_state, save_best, save_last
from mvn.distributed import all_ranks_finite, barrier, gather_in_order, shard_range
from mvn.errors import CAPFError
from mvn.evaluations.noise import noise_function
from mvn.evaluations.report import check_benchmark, log_epoch, run_evaluations
from mvn.feature_cache import attach_feature_cache, check_config as check_feature_cache
from mvn.experiment import abandon_folder, check_name, close_logging, default_experiment_name, \
    make_experiment_folder, open_run_folder, record_config_change, setup_logging, write_config
from mvn.metrics import mpjpe
from mvn.models import build_model
from mvn.models.weights import load_model_weights
from mvn.recipe import apply_channels_last, autocast, build_training_model, configure_tf32, \
    make_optimizer, set_learning_rate
from mvn.stopping import EvaluationStopped, StopSignals, TrainingStopped, worker_init
from mvn.threads import apply_torch_threads

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Data

def end_loader_workers():
    """End the DataLoader workers still running, with SIGKILL: for the end of a process
    (train.py). They ignore the stop signals (worker_init), so the terminate() that Python sends
    its remaining daemonic children at exit (after an error, say) would not end them and the exit
    would wait for them forever."""
    children = [child for child in multiprocessing.active_children() if child.daemon]
    if not children:
        return
    # The DataLoader's SIGCHLD handler would raise at the first death and leave the rest running.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in children:
        child.kill()
    for child in children:
        child.join(timeout=10)


def build_split(benchmark, config, split):
    """The benchmark's dataset of `split`; without image features (model.image_features false)
    its samples carry no decoded image (LabelledCropDataset.with_images)."""
    dataset = benchmark.build_dataset(config, split)
    dataset.with_images = config.model.image_features
    return dataset


def make_loader(dataset, batch_size, config, device, sampler=None):
    workers = config.dataset.num_workers
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=False,
                      drop_last=False, prefetch_factor=4 if workers > 0 else None,
                      worker_init_fn=worker_init if workers > 0 else None)


# ----------------------------------------------------------------------------------------------
# Training

def seed_step(seed, epoch, step, rank):
    """Seed the global RNG (drop path) from (seed, epoch, step, rank) and return the generator
    of the step's flip draw: a run resumed at any step draws what the uninterrupted one would."""
    torch.manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + step) * 1009 + rank)
    return torch.Generator().manual_seed(((seed * 7919 + epoch) * 7919 + step) * 31 + rank)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (shuffled by (seed, epoch), the same order on every restart) that can
    start an epoch after its first `skip` samples: a run resumed mid-epoch continues at the very
    next batch without loading the ones it had done."""

    skip = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self):
        return max(0, super().__len__() - self.skip)


def training_loss(prediction, target, config, skeleton):
    """MPJPE over all 17 joints, the root (target 0) included, as the released code trains;
    with loss.include_root false, over the other 16 (MPI-INF-3DHP QUIRK Q5)."""
    if config.loss.include_root:
        return mpjpe(prediction, target)
    keep = [j for j in range(prediction.shape[-2]) if j != skeleton.root_joint]
    return mpjpe(prediction[..., keep, :], target[..., keep, :])


def train_step(model, optimizer, batch, config, processes, flip_generator):
    """THE training step: one flip draw for the whole batch, batch preparation, forward, MPJPE
    loss, a non-finite loss skipped on every process together, clipping, AdamW step.

    `batch` is a DataLoader batch (CPU tensors). Returns the loss (a detached 0-d tensor), or
    None when the step was skipped."""
    flip = (config.train.flip_augmentation
            and torch.rand(1, generator=flip_generator).item() < 0.5)  # one draw per batch
    skeleton = benchmarks.get(config.dataset.name).skeleton
    images, keypoints_2d, keypoints_2d_crop, target = prepare_batch(
        batch, config.model.backbone.type, processes.device, flip=flip, skeleton=skeleton)
    with autocast(config, processes.device):
        prediction = model(images, keypoints_2d, keypoints_2d_crop)   # (B, 1, 17, 3)
    loss = training_loss(prediction.float(), target, config, skeleton)
    optimizer.zero_grad(set_to_none=True)
    if not all_ranks_finite(loss, processes):  # a NaN batch is not stepped (docs/fidelity.md)
        return None
    loss.backward()
    if config.loss.grad_clip > 0:  # the released threshold: over the INITIAL lr
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(parameters,
                                       config.loss.grad_clip / config.train.volume_net_lr)
    optimizer.step()
    return loss.detach()


def train_one_epoch(model, loader, optimizer, config, epoch, processes, writer=None,
                    global_step=0, start_step=0, progress=None, on_step=None, training_step=None):
    """One pass over the training split from step `start_step` (the loader yields the batches
    from there on); returns statistics and the new global step. `training_step`: the task's
    (default: CA-PF's `train_step`), called as train_step is.

    `progress` carries the epoch's sums so far (a resumed epoch reports the uninterrupted one's
    mean loss). After each step `on_step(step_done, progress)` may save, or stop the run."""
    model.train()
    step_function = train_step if training_step is None else training_step
    max_steps = config.train.max_steps_per_epoch
    total = start_step + len(loader)
    total = total if max_steps <= 0 else min(max_steps, total)
    progress = dict({"loss_sum": 0.0, "steps": 0, "skipped": 0, "samples": 0, "seconds": 0.0},
                    **(progress or {}))
    start = time.time() - progress["seconds"]
    bar = tqdm(total=total, initial=start_step, desc="epoch %d" % epoch,
               disable=not processes.is_main, dynamic_ncols=True)
    perturb = training_noise(getattr(loader, "dataset", None), config, epoch)
    with bar:  # closed (its line ended) whatever happens, so that an error prints on its own
        for step, batch in enumerate(loader, start_step):
            if step >= total:
                break
            flips = seed_step(config.seed, epoch, step, processes.rank)
            if perturb is not None:  # train.noise_2d_px
                batch = perturb(batch)
            loss = step_function(model, optimizer, batch, config, processes, flips)
            bar.update(1)
            if loss is None:
                progress["skipped"] += 1
                logger.warning("epoch %d step %d: non-finite loss, step skipped (%d so far); its "
                               "samples: %s", epoch, step, progress["skipped"],
                               batch_records(loader, batch))
            else:
                progress["samples"] += len(batch["images"]) * processes.world_size
                progress["steps"] += 1
                global_step += 1
                loss_value = loss.item()
                progress["loss_sum"] += loss_value
                rate = progress["samples"] / max(time.time() - start, 1e-9)
                bar.set_postfix(loss="%.4f" % loss_value, samples_per_s="%.1f" % rate)
                if writer is not None and global_step % config.train.log_every == 0:
                    writer.add_scalar("train/loss", loss_value, global_step)
                    writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], global_step)
                    writer.add_scalar("train/samples_per_s", rate, global_step)
            progress["seconds"] = time.time() - start
            if on_step is not None and step + 1 < total:
                on_step(step + 1, progress)
    elapsed = time.time() - start
    stats = {"loss": progress["loss_sum"] / max(progress["steps"], 1),
             "steps": progress["steps"], "skipped_steps": progress["skipped"],
             "samples_per_s": progress["samples"] / max(elapsed, 1e-9), "seconds": elapsed,
             "end_step": total, "progress": dict(progress)}  # where a stop in evaluation saves
    return stats, global_step


def training_noise(dataset, config, epoch):
    """train.noise_2d_px > 0: the 2D-noise model of the evaluations (mvn/evaluations/noise.py)
    on the training inputs, drawn per (seed, epoch, sample); else None (the released inputs)."""
    if config.train.noise_2d_px <= 0:
        return None
    return noise_function(benchmarks.get(config.dataset.name), dataset,
                          config.train.noise_2d_px, config.seed, stream=epoch + 1)


def batch_records(loader, batch, shown=8):
    """'records 12, 40, ... of <label file>' for a batch: the label-file records of its samples."""
    dataset = getattr(loader, "dataset", None)
    labels = getattr(dataset, "labels", None)
    if labels is None or "index" not in batch:
        return "unknown"
    records = labels.record[batch["index"].numpy()]
    listed = ", ".join(str(r) for r in records[:shown]) + (", ..." if len(records) > shown else "")
    source = getattr(dataset, "labels_path", None) or getattr(dataset, "path", "the labels")
    return "records %s of %s" % (listed, source)


def best_epoch_rule(p1_mm, best_p1_mm, round_mm=0.1):
    """(is this epoch the best?, the new best) as the released loops decide: the average P1
    rounded to `round_mm` (Human3.6M: 0.1 mm; MPI-INF-3DHP: 0, not rounded), compared with a
    strict `<` (a tie keeps the earlier epoch)."""
    rounded = np.float64(p1_mm)
    if round_mm > 0:  # a power of ten (validated): 0.1 mm -> round(p1, 1), as released
        rounded = round(rounded, round(-math.log10(round_mm)))
    if rounded < best_p1_mm:
        return True, float(rounded)
    return False, best_p1_mm


# ----------------------------------------------------------------------------------------------
# Evaluation

@torch.no_grad()
def predict_in_shards(dataset, config, processes, predict_batch, shape, progress=True,
                      stop=None):
    """(predictions, targets) of `predict_batch(batch) -> (B, *shape) each` over the whole
    dataset in order (the first val.max_batches batches with that option).

    Each process predicts a contiguous shard; the shards are gathered in rank order, so the
    result is the same for 1 and N processes. `stop` (() -> bool, the same answer on every
    rank: Run.stop_requested) is asked after every batch, as often on every rank (a shorter
    shard asks on after its last batch); when it says so, EvaluationStopped ends the evaluation
    on every rank at once."""
    length = len(dataset)
    if config.val.max_batches > 0:
        length = min(length, config.val.max_batches * config.val.batch_size)
    batch_size = config.val.batch_size
    shard = shard_range(length, processes.rank, processes.world_size, batch_size)
    most_batches = max(math.ceil(len(shard_range(length, rank, processes.world_size,
                                                 batch_size)) / batch_size)
                       for rank in range(processes.world_size))
    loader = make_loader(Subset(dataset, list(shard)), batch_size, config, processes.device)
    predictions, targets = [], []
    asked = 0
    with tqdm(loader, desc="evaluate", disable=not (progress and processes.is_main),
              dynamic_ncols=True) as bar:
        for batch in bar:
            prediction, target = predict_batch(batch)
            predictions.append(prediction)
            targets.append(target)
            asked += 1
            if stop is not None and stop():
                raise EvaluationStopped("evaluation stopped after %d batch(es)" % asked)
    while stop is not None and asked < most_batches:  # as many questions as the longest shard
        asked += 1
        if stop():
            raise EvaluationStopped("evaluation stopped after %d batch(es)" % asked)
    empty = torch.zeros((0,) + tuple(shape), device=processes.device)
    local_predictions = torch.cat(predictions) if predictions else empty
    local_targets = torch.cat(targets) if targets else empty
    return (gather_in_order(local_predictions, length, processes, batch_size).cpu(),
            gather_in_order(local_targets, length, processes, batch_size).cpu())


@torch.no_grad()
def predict(model, dataset, config, processes, progress=True, perturb=None, stop=None):
    """Predictions (mvn.batch.predict_pose) and root-relative targets (N, 17, 3), in the
    benchmark's unit (Human3.6M: metres; MPI-INF-3DHP: mm), for the whole dataset in order
    (`predict_in_shards`: the same for 1 and N processes). `perturb` (batch -> batch) changes
    each DataLoader batch first (the 2D-noise sweep)."""
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    raw.eval()
    backbone = config.model.backbone.type
    skeleton = benchmarks.get(config.dataset.name).skeleton

    def predict_batch(batch):
        if perturb is not None:
            batch = perturb(batch)
        images, keypoints_2d, keypoints_2d_crop, target = prepare_batch(
            batch, backbone, processes.device, skeleton=skeleton)
        with autocast(config, processes.device):
            prediction = predict_pose(raw, images, keypoints_2d, keypoints_2d_crop,
                                      config.val.flip_test, skeleton=skeleton)  # (B, 17, 3)
        return prediction, target[:, 0]

    return predict_in_shards(dataset, config, processes, predict_batch, (17, 3), progress,
                             stop)


def evaluate(model, dataset, config, processes, perturb=None, stop=None):
    """(the benchmark's Evaluation (mvn.benchmark), targets (N, 17, 3)) of `model` on `dataset`
    (each batch changed by `perturb` first, if given; `stop`: see `predict_in_shards`).

    Every rank gathers every prediction, so every rank returns the same evaluation."""
    predictions, targets = predict(model, dataset, config, processes, perturb=perturb,
                                   stop=stop)
    benchmark = benchmarks.get(config.dataset.name)
    return benchmark.evaluate(predictions, targets, dataset, config), targets


def in_metres(poses, benchmark):
    """(..., 17, 3) in the benchmark's unit -> NumPy metres (what the pictures draw)."""
    return np.asarray(poses, dtype=np.float64) * (benchmark.unit_mm / 1000.0)


def log_validation_samples(writer, dataset, evaluation, targets, epoch, benchmark, count=4):
    """A few validation frames (crop + 2D joints + 3D prediction vs truth) to TensorBoard."""
    predictions = in_metres(evaluation.predictions, benchmark)
    targets_m = in_metres(targets, benchmark)
    indices = np.linspace(0, len(predictions) - 1, num=min(count, len(predictions))).astype(int)
    for slot, index in enumerate(indices):
        panel = vis.sample_panel(dataset.load_crop(index), dataset.labels.keypoints_2d_crop[index],
                                 predictions[index], targets_m[index], title="frame %d" % index,
                                 skeleton=benchmark.skeleton)
        writer.add_image("val/sample_%d" % slot, panel, epoch, dataformats="HWC")


def save_best_worst(path, dataset, evaluation, targets, benchmark):
    """PNG of the best and the worst frame of every group of the benchmark (Human3.6M: action;
    MPI-INF-3DHP: sequence), by the evaluation's per-frame error."""
    n = len(evaluation.predictions)
    groups, names = benchmark.picture_groups(dataset)
    return vis.save_best_worst_per_group(
        path, dataset.load_crop, dataset.labels.keypoints_2d_crop[:n],
        in_metres(evaluation.predictions, benchmark), in_metres(targets, benchmark),
        evaluation.frame_errors_mm, groups[:n], names, skeleton=benchmark.skeleton)


# ----------------------------------------------------------------------------------------------
# The two jobs of train.py

@dataclass(frozen=True)
class Task:
    """What `fit` and `run_evaluation` train and score, as plain functions. The run machinery
    (experiment folder, resume, stop signals, processes, sampler, checkpoints, TensorBoard) is
    theirs and the same for every task. `config.task` picks one (mvn.tasks.task_of): CA-PF (CAPF_TASK,
    below) or the 2D detector stage (mvn.detector.TASK)."""
    # (benchmark, config, split) -> the dataset of that split
    build_split: Callable
    # (config, device) -> the model to train, its starting weights loaded, on `device`
    build_model: Callable
    # (config, checkpoint path, device) -> (the model with the checkpoint's weights, the
    # checkpoint dict): what --eval scores
    load_for_evaluation: Callable
    # (model, config) -> the optimiser
    make_optimizer: Callable
    # (optimizer, config, epoch) -> the base lr of `epoch`, set on the optimiser
    set_learning_rate: Callable
    # (model, optimizer, batch, config, processes, generator) -> the loss, or None if skipped
    train_step: Callable
    # (model, dataset, config, processes, stop=None) -> (evaluation, targets), the same on
    # every rank; `stop` as predict_in_shards takes it
    evaluate: Callable
    # (run, epoch, lr, stats, evaluation, writer, val_set, targets, benchmark): the epoch's
    # record, the best epoch and its files, TensorBoard, last.bin (Run.save_last)
    end_of_epoch: Callable
    # run -> the closing line's account of the best epoch
    describe_best: Callable
    # (evaluation, targets, dataset, folder, benchmark): --eval's console table and files
    report: Callable
    # (model, dataset, config, processes, folder, evaluation, targets, benchmark): --eval's
    # evaluations beyond the table (config.evaluation), on every rank; None: none
    more_evaluations: Callable = None



class Run:
    """What fit carries from step to step: the model, optimiser, folder and progress, and the
    stop signals. `save_last` / `stop_if_asked` are what a step may do."""

    def __init__(self, config, processes, folder, model, optimizer, signals):
        self.config, self.processes, self.folder = config, processes, folder
        self.model, self.optimizer, self.signals = model, optimizer, signals
        self.best_p1, self.history = float("inf"), []

    def save_last(self, epoch, step, lr, progress=None):
        """last.bin at (epoch, step) on rank 0; every rank waits for it."""
        if self.processes.is_main:
            save_last(self.folder, self.model, self.optimizer, (epoch, step), lr, self.best_p1,
                      self.history, progress)
        barrier(self.processes)

    def stop_requested(self):
        return self.signals.requested(self.processes, self.processes.control_group)

    def stopped(self, epoch, step, when=None):
        return TrainingStopped("stopped by %s at epoch %d step %d%s; last.bin is written in %s"
                               % (self.signals.received or "a stop signal", epoch, step,
                                  " (%s)" % when if when else "", self.folder),
                               epoch, step, self.folder)


def fit(config, processes, logdir, task, resume=None, name=None, start_over=False):
    """Train `task` (mvn.tasks.task_of(config)) for config.train.n_epochs, evaluating after
    every epoch; returns the folder.

    `resume`: an experiment folder (or its last.bin), or 'auto' with `name` (see
    mvn.experiment.open_run_folder). The run continues at the exact step its last.bin recorded.
    SIGTERM, SIGUSR1 and Ctrl-C end it after the step in flight with last.bin written
    (TrainingStopped). A new run that fails before its first checkpoint leaves no folder.
    A resume that finds no intact checkpoint in a folder with results is refused unless
    `start_over` (--start-over; mvn.checkpoint.resume_state)."""
    configure_tf32(config)
    benchmark = benchmarks.get(config.dataset.name)
    check_benchmark(benchmark, config)  # what evaluation.* and train.noise_2d_px read
    check_feature_cache(config)
    folder, resuming, run_lock = open_run_folder(logdir, config, processes, resume, name)
    # --resume FILE: that checkpoint exactly (else the folder's newest complete one)
    resume_file = resume if resume not in (None, "auto") and os.path.isfile(resume) else None
    setup_logging(folder, processes)
    threads_before = torch.get_num_threads()  # restored at the end (in-process callers)
    logger.info("%s", apply_torch_threads(config))
    writer = None
    signals = StopSignals()
    try:
        if processes.is_main:
            if resuming:
                remove_partial_files(folder)
                record_config_change(folder, config)
            else:
                write_config(folder, config)
        logger.info("experiment folder: %s (%d process(es), device %s)",
                    folder, processes.world_size, processes.device)
        train_set = task.build_split(benchmark, config, "train")
        val_set = task.build_split(benchmark, config, "val")
        logger.info("train: %d frames, val: %d frames", len(train_set), len(val_set))

        torch.manual_seed(config.seed)  # the model's initialisation
        model = task.build_model(config, processes.device)
        optimizer = task.make_optimizer(model, config)
        run = Run(config, processes, folder, model, optimizer, signals)
        signals.install()
        start_epoch, start_step, progress = 0, 0, {}
        state = (resume_state(model, optimizer, folder, resume_file, start_over)
                 if resuming else None)
        if state is not None:
            start_epoch, start_step, run.best_p1, run.history, progress = state
        elif resuming:
            logger.warning("%s holds no complete checkpoint yet: starting from the beginning",
                           folder)
        # train.feature_cache: the maps of the backbone as it will run (after a resume's weights)
        for split, dataset in (("train", train_set), ("val", val_set)):
            if not attach_feature_cache(model, dataset, config, processes.device,
                                        benchmark.skeleton, logdir, split, run.stop_requested):
                raise TrainingStopped(
                    "stopped by %s while the backbone's maps of the %s split were computed "
                    "(train.feature_cache), before any training step of this start; nothing of "
                    "them is kept" % (signals.received or "a stop signal", split), 0, 0, folder)

        ddp_model = model
        if processes.distributed:
            device_ids = [processes.local_rank] if processes.device.type == "cuda" else None
            ddp_model = DistributedDataParallel(model, device_ids=device_ids)
        train_model = torch.compile(ddp_model) if config.train.compile else ddp_model

        sampler = ResumableSampler(train_set, num_replicas=processes.world_size,
                                   rank=processes.rank, shuffle=True, seed=config.seed)
        loader = make_loader(train_set, config.train.batch_size, config, processes.device,
                             sampler=sampler)
        if processes.is_main:
            writer = SummaryWriter(os.path.join(folder, "tensorboard"))
        steps_per_epoch = min(math.ceil(len(sampler) / config.train.batch_size),
                              config.train.max_steps_per_epoch or len(loader))
        global_step = start_epoch * steps_per_epoch + start_step

        for epoch in range(start_epoch, config.train.n_epochs):
            first = epoch == start_epoch
            sampler.set_epoch(epoch)
            sampler.skip = start_step * config.train.batch_size if first else 0
            lr = task.set_learning_rate(optimizer, config, epoch)  # CA-PF: x lr_decay per epoch
            stats, global_step = train_one_epoch(
                train_model, loader, optimizer, config, epoch, processes, writer, global_step,
                start_step=start_step if first else 0, progress=progress if first else None,
                on_step=lambda step, progress, epoch=epoch, lr=lr: after_step(
                    run, epoch, step, lr, progress), training_step=task.train_step)
            try:
                evaluation, targets = task.evaluate(model, val_set, config, processes,
                                                    stop=run.stop_requested)
            except EvaluationStopped:  # the epoch's steps are kept; its evaluation is redone
                run.save_last(epoch, stats["end_step"], lr, stats["progress"])
                raise run.stopped(epoch, stats["end_step"], "during the epoch's evaluation, "
                                  "which the resume does again")
            task.end_of_epoch(run, epoch, lr, stats, evaluation, writer, val_set, targets,
                              benchmark)
            if run.stop_requested() and epoch + 1 < config.train.n_epochs:
                raise run.stopped(epoch + 1, 0)
        if processes.is_main and run.history:
            logger.info("%s; checkpoints in %s", task.describe_best(run),
                        os.path.join(folder, "checkpoints"))
    except BaseException as error:
        if not resuming and not isinstance(error, TrainingStopped):
            abandon_folder(folder, processes)
        raise
    finally:
        torch.set_num_threads(threads_before)
        signals.close()
        if run_lock is not None:
            run_lock.close()
        if writer is not None:
            writer.close()
        close_logging()
    return folder


def after_step(run, epoch, step_done, lr, progress):
    """After each training step: last.bin every train.checkpoint_every_steps steps, and at a
    stop signal (then TrainingStopped, on every process together)."""
    stop = run.stop_requested()
    every = run.config.train.checkpoint_every_steps
    if stop or (every > 0 and step_done % every == 0):
        run.save_last(epoch, step_done, lr, progress)
    if stop:
        raise run.stopped(epoch, step_done)


def end_of_epoch(run, epoch, lr, stats, evaluation, writer, val_set, targets, benchmark):
    """The epoch's record, the best epoch (its table and best_epoch.bin), TensorBoard and
    last.bin at the start of the next epoch."""
    config = run.config
    is_best, run.best_p1 = best_epoch_rule(evaluation.p1_mm, run.best_p1,
                                           config.train.best_epoch_round_mm)
    run.history.append({"epoch": epoch, "loss": stats["loss"], "p1": evaluation.p1_mm,
                        "p2": evaluation.p2_mm, "skipped_steps": stats["skipped_steps"],
                        "samples_per_s": stats["samples_per_s"]})
    logger.info("epoch %d: loss %.4f, val P1 %.2f mm, P2 %.2f mm, %.1f samples/s, %d skipped "
                "step(s)%s", epoch, stats["loss"], evaluation.p1_mm, evaluation.p2_mm,
                stats["samples_per_s"], stats["skipped_steps"], " (best)" if is_best else "")
    if run.processes.is_main:
        writer.add_scalar("val/p1_mm", evaluation.p1_mm, epoch)
        writer.add_scalar("val/p2_mm", evaluation.p2_mm, epoch)
        writer.add_scalar("train/epoch_loss", stats["loss"], epoch)
        writer.add_scalar("train/epoch_samples_per_s", stats["samples_per_s"], epoch)
        if config.train.vis_every_epoch:
            log_validation_samples(writer, val_set, evaluation, targets, epoch, benchmark)
        log_epoch(writer, config, evaluation, targets, benchmark, val_set, epoch)  # evaluation.*
        if is_best:
            benchmark.save_evaluation(evaluation, run.folder, "best_evaluation")
            save_best(run.folder, run.model, run.optimizer, epoch + 1, lr)
        writer.flush()
    run.save_last(epoch + 1, 0, lr)


def run_evaluation(config, processes, logdir, checkpoint_path, task, split="val", name=None):
    """--eval: load a checkpoint into `task`'s model (mvn.tasks.task_of(config)), print and save
    the benchmark's evaluation (and its best/worst frames) in a new folder `name` (default
    <title>_eval@<date-time>) under `logdir`. Returns (the Evaluation, the evaluation folder)."""
    benchmark = benchmarks.get(config.dataset.name)
    if split not in benchmark.evaluable_splits:
        raise CAPFError("%s: --eval scores only the %s split (%s): its official tables exist "
                        "only there; leave out --eval_dataset"
                        % (benchmark.name, " / ".join(benchmark.evaluable_splits),
                           benchmark.evaluable_splits_note))
    check_benchmark(benchmark, config)
    check_feature_cache(config)
    configure_tf32(config)
    check_name(name)
    folder = make_experiment_folder(logdir, name or default_experiment_name(config.title, "_eval"),
                                    processes)
    setup_logging(folder, processes)
    threads_before = torch.get_num_threads()  # restored at the end (in-process callers)
    logger.info("%s", apply_torch_threads(config))
    try:
        model, checkpoint = task.load_for_evaluation(config, checkpoint_path, processes.device)
        logger.info("checkpoint %s (epoch %s)", checkpoint_path, checkpoint.get("epoch", "?"))
        dataset = task.build_split(benchmark, config, split)
        attach_feature_cache(model, dataset, config, processes.device, benchmark.skeleton, logdir,
                             split)  # train.feature_cache: the noise sweep reads it 6 times
        logger.info("evaluating on the %s split: %d frames, flip test %s", split, len(dataset),
                    "on" if config.val.flip_test else "off")
        evaluation, targets = task.evaluate(model, dataset, config, processes)
        if processes.is_main:
            task.report(evaluation, targets, dataset, folder, benchmark)
            write_config(folder, config)
        if task.more_evaluations is not None:  # every rank: they evaluate again
            task.more_evaluations(model, dataset, config, processes, folder, evaluation, targets,
                                  benchmark)
        if processes.is_main:
            logger.info("results in %s", folder)
    except BaseException:
        abandon_folder(folder, processes)  # a failed evaluation leaves no folder
        raise
    finally:
        torch.set_num_threads(threads_before)
        close_logging()
    return evaluation, folder


# ----------------------------------------------------------------------------------------------
# CA-PF as a Task

def build_capf_model(config, device):
    """The CA-PF model to train: its starting weights (build_training_model), on `device`."""
    return apply_channels_last(build_training_model(config).to(device), config)


def load_capf_for_evaluation(config, checkpoint_path, device):
    model = build_model(config)
    checkpoint = load_model_weights(model, checkpoint_path)
    apply_channels_last(model.to(device), config)
    return model, checkpoint


def describe_capf_best(run):
    return "best val P1 %.1f mm" % run.best_p1


def report_capf_evaluation(evaluation, targets, dataset, folder, benchmark):
    """--eval's output: the benchmark's table (console and files) and its best/worst frames."""
    logger.info("%s", benchmark.format_evaluation(evaluation))
    benchmark.save_evaluation(evaluation, folder, "evaluation")
    save_best_worst(os.path.join(folder, "best_worst_frames.png"), dataset, evaluation, targets,
                    benchmark)


def more_capf_evaluations(model, dataset, config, processes, folder, evaluation, targets,
                          benchmark):
    """config.evaluation (off by default): per joint, 2D noise, hard frames, cost."""
    run_evaluations(model, dataset, config, processes, folder, evaluation, targets, benchmark,
                    lambda perturb: evaluate(model, dataset, config, processes, perturb)[0])


CAPF_TASK = Task(
    build_split=build_split, build_model=build_capf_model,
    load_for_evaluation=load_capf_for_evaluation, make_optimizer=make_optimizer,
    set_learning_rate=set_learning_rate, train_step=train_step, evaluate=evaluate,
    end_of_epoch=end_of_epoch, describe_best=describe_capf_best, report=report_capf_evaluation,
    more_evaluations=more_capf_evaluations)
