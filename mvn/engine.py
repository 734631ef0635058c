"""Training and evaluation (docs/fidelity.md): processes, loops, checkpoints.

Read top to bottom: distributed set-up, model/optimiser construction, checkpoints, evaluation,
one training epoch, and `fit` which runs the epochs. train.py only parses the command line.
"""
import csv
import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from mvn.batch import flip_test, prepare_batch
from mvn.config import config_to_yaml
from mvn.metrics import format_table, mpjpe, per_action_errors
from mvn.models import build_model, default_pretrained_path
from mvn.models.weights import WeightsError, load_backbone_weights, load_model_weights

logger = logging.getLogger("capf")


# ----------------------------------------------------------------------------------------------
# Processes

@dataclass
class Processes:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def setup_processes(device=None, local_rank=None):
    """Rank, world size and device from torchrun / torch.distributed.launch variables.

    NCCL on CUDA, gloo on CPU. `device` is 'cpu', 'cuda' or None (cuda when available)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", local_rank if local_rank is not None else 0))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but no CUDA device is visible; "
                               "use --device cpu")
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    elif device == "cpu":
        torch_device = torch.device("cpu")
    else:
        raise ValueError("--device must be cpu or cuda, got %r" % device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return Processes(rank, world_size, local_rank, torch_device)


def cleanup_processes(processes):
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def setup_logging(folder, is_main):
    """Console and `folder/train.log` on rank 0; warnings only elsewhere."""
    logger.handlers.clear()
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler()]
    if is_main and folder:
        handlers.append(logging.FileHandler(os.path.join(folder, "train.log")))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    for name in ("mvn.metrics", "mvn.models.weights"):
        logging.getLogger(name).handlers = handlers
        logging.getLogger(name).setLevel(logger.level)
        logging.getLogger(name).propagate = False


def make_experiment_folder(logdir, title, is_main, suffix=""):
    """logdir/<title><suffix>@<time>, created by rank 0 (others get the same name)."""
    name = [("%s%s@%s" % (title, suffix, time.strftime("%Y%m%d-%H%M%S")))]
    if dist.is_initialized():
        dist.broadcast_object_list(name, src=0)
    folder = os.path.join(logdir, name[0])
    if is_main:
        os.makedirs(os.path.join(folder, "checkpoints"), exist_ok=True)
    return folder


# ----------------------------------------------------------------------------------------------
# Model and optimiser

def resolve_pretrained_path(config):
    """The backbone file to start from, or None for 'none' (random backbone)."""
    value = config.model.backbone.pretrained
    backbone = config.model.backbone.type
    if value.lower() == "none":
        return None
    if value:
        return value
    path = default_pretrained_path(backbone)
    if path is None:
        raise WeightsError("backbone '%s' has no published weights: set "
                           "model.backbone.pretrained to a file, or to none" % backbone)
    return path


def build_training_model(config):
    """build_model + the pretrained backbone + optional whole-model init weights."""
    model = build_model(config)
    path = resolve_pretrained_path(config)
    if path is not None:
        if not os.path.isfile(path):
            raise WeightsError("pretrained backbone %s not found: download the published file "
                               "into data/pretrained/ or data/pretrained/coco/ (see README), or "
                               "set model.backbone.pretrained" % path)
        load_backbone_weights(model.backbone, path)
        logger.info("backbone weights: %s", path)
    else:
        logger.warning("model.backbone.pretrained is none: the backbone keeps its random "
                       "initialisation")
    if config.model.init_weights:
        load_model_weights(model, config.model.init_weights)
        logger.info("model weights: %s", config.model.init_weights)
    return model


def apply_channels_last(model, config):
    """train.channels_last: the backbone's weights in NHWC. Its input is NHWC already (CA_PF
    permutes the (B, 256, 192, 3) images without a copy), so the convolutions run channels-last
    either way; NHWC weights spare them a reorder per call."""
    if config.train.channels_last:
        model.backbone.to(memory_format=torch.channels_last)
    return model


def group_lr_factors(config):
    """The lr factor of each optimiser group: [1.0] for the released recipe (one group), or
    [1.0, f] for the intended two-group recipe (`sampling_offsets` at f x lr)."""
    factor = config.train.sampling_offsets_lr_factor
    return [1.0] if factor == 1.0 else [1.0, factor]


def learning_rate(config, epoch):
    """The lr of `epoch` (0-based): train.volume_net_lr decayed by train.lr_decay once per
    finished epoch, by repeated multiplication as the released loop does (same float64 values)."""
    lr = config.train.volume_net_lr
    for _ in range(epoch):
        lr *= config.train.lr_decay
    return lr


def set_learning_rate(optimizer, config, epoch):
    """Every group's lr for `epoch`; returns the base lr (the one `best_epoch.bin` records)."""
    lr = learning_rate(config, epoch)
    for group, factor in zip(optimizer.param_groups, group_lr_factors(config)):
        group["lr"] = lr * factor
    return lr


def make_optimizer(model, config):
    """AdamW (weight decay on every parameter) over the trainable `volume_net` parameters.

    One group at train.volume_net_lr, as the released code trains (docs/fidelity.md, "Learning
    rate"); with train.sampling_offsets_lr_factor != 1, the paper's intended two groups."""
    lr = config.train.volume_net_lr
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    factors = group_lr_factors(config)
    if len(factors) == 1:  # the released order: volume_net.named_parameters()
        groups = [{"params": [p for _, p in trainable], "lr": lr}]
    else:
        others = [p for n, p in trainable if "sampling_offsets" not in n]
        offsets = [p for n, p in trainable if "sampling_offsets" in n]
        groups = [{"params": others, "lr": lr}, {"params": offsets, "lr": lr * factors[1]}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=config.train.weight_decay)


def configure_tf32(config):
    """train.tf32: TF32 for CUDA matmuls and cuDNN convolutions; off (the default) = exact fp32.
    The published numbers were made with PyTorch 1.11, where both were TF32 by default."""
    torch.backends.cuda.matmul.allow_tf32 = config.train.tf32
    torch.backends.cudnn.allow_tf32 = config.train.tf32


# ----------------------------------------------------------------------------------------------
# Checkpoints

def atomic_save(obj, path):
    """torch.save to a temporary file, then rename: a crash never leaves a torn checkpoint."""
    temporary = path + ".tmp"
    torch.save(obj, temporary)
    os.replace(temporary, path)


def model_state_with_module_prefix(model):
    """The DDP-style state dict (`module.` keys) the reference writes, with or without DDP."""
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    return {"module." + k: v for k, v in raw.state_dict().items()}


def save_checkpoints(folder, model, optimizer, epochs_done, lr, best_p1, history, is_best):
    """After epoch `epochs_done` (1-based): `best_epoch.bin` in the released format when it is
    the best ({'epoch': 1-based, 'lr': the lr used in that epoch, 'model', 'optimizer'}), and
    `last.bin` with what a resume needs (best P1, history). No RNG state: every epoch seeds its
    own generators from (seed, epoch, rank), so a resumed run draws what the uninterrupted one
    would have."""
    state = model_state_with_module_prefix(model)
    if is_best:
        atomic_save({"epoch": epochs_done, "lr": lr, "model": state,
                     "optimizer": optimizer.state_dict()},
                    os.path.join(folder, "checkpoints", "best_epoch.bin"))
    atomic_save({"epoch": epochs_done, "lr": lr, "model": state,
                 "optimizer": optimizer.state_dict(), "best_p1": best_p1, "history": history},
                os.path.join(folder, "checkpoints", "last.bin"))


def find_resume_checkpoint(path):
    """--resume takes last.bin itself or the experiment folder holding checkpoints/last.bin."""
    candidate = os.path.join(path, "checkpoints", "last.bin") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise WeightsError("nothing to resume: %s not found (pass the experiment folder or its "
                           "checkpoints/last.bin)" % candidate)
    return candidate


# ----------------------------------------------------------------------------------------------
# Evaluation

def shard_range(length, rank, world_size, batch_size=1):
    """Contiguous shard of [0, length) for `rank`: every frame exactly once, no padding.

    Shards start on multiples of `batch_size`, so every batch holds the same frames whatever the
    number of processes: batched kernels then give bit-identical predictions for 1 and N."""
    batches = math.ceil(length / batch_size)
    per_rank = math.ceil(batches / world_size) * batch_size
    return range(min(rank * per_rank, length), min((rank + 1) * per_rank, length))


def gather_in_order(local, length, processes, batch_size=1):
    """Concatenate every rank's shard of `shard_range` (rank order): the (length, ...) result."""
    if not processes.distributed:
        return local
    sizes = [len(shard_range(length, r, processes.world_size, batch_size))
             for r in range(processes.world_size)]
    device = processes.device
    padded = torch.zeros((max(sizes),) + tuple(local.shape[1:]), dtype=local.dtype, device=device)
    padded[:len(local)] = local.to(device)
    gathered = [torch.empty_like(padded) for _ in range(processes.world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:size].cpu() for g, size in zip(gathered, sizes)])


def make_loader(dataset, batch_size, config, device, sampler=None, shuffle=False):
    workers = config.dataset.num_workers
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle,
                      num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, drop_last=False,
                      prefetch_factor=4 if workers > 0 else None)


@torch.no_grad()
def predict(model, dataset, config, processes, progress=True):
    """Root-relative predictions and targets (N, 17, 3) for the whole dataset, in order.

    Each process predicts a contiguous shard; the shards are gathered in rank order, so the
    result is the same for 1 and N processes."""
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    raw.eval()
    length = len(dataset)
    if config.val.max_batches > 0:
        length = min(length, config.val.max_batches * config.val.batch_size)
    batch_size = config.val.batch_size
    shard = shard_range(length, processes.rank, processes.world_size, batch_size)
    loader = make_loader(Subset(dataset, list(shard)), batch_size, config,
                         processes.device)
    predictions, targets = [], []
    backbone = config.model.backbone.type
    for batch in tqdm(loader, desc="evaluate", disable=not (progress and processes.is_main),
                      dynamic_ncols=True):
        images, keypoints_2d, keypoints_2d_crop, target = prepare_batch(
            batch, backbone, processes.device)
        with autocast(config, processes.device):
            if config.val.flip_test:
                prediction = flip_test(raw, images, keypoints_2d, keypoints_2d_crop)
            else:
                prediction = raw(images, keypoints_2d, keypoints_2d_crop)
        predictions.append(prediction.float()[:, 0])  # (B, 17, 3)
        targets.append(target[:, 0])
    empty = torch.zeros(0, 17, 3, device=processes.device)
    local_predictions = torch.cat(predictions) if predictions else empty
    local_targets = torch.cat(targets) if targets else empty
    return (gather_in_order(local_predictions, length, processes, batch_size).cpu(),
            gather_in_order(local_targets, length, processes, batch_size).cpu())


def evaluate(model, dataset, config, processes):
    """(the per-action table in mm, predictions, targets) on `dataset`; identical on every rank.

    The table on rank 0 and the others alike (every rank gathers every prediction)."""
    predictions, targets = predict(model, dataset, config, processes)
    labels = dataset.labels
    errors = per_action_errors(predictions.numpy(), targets.numpy(),
                               labels.action[:len(predictions)], labels.subaction[:len(predictions)])
    return errors, predictions, targets


def save_table(errors, folder, name="evaluation"):
    """The per-action table as JSON and CSV in `folder`."""
    with open(os.path.join(folder, name + ".json"), "w") as f:
        json.dump(errors, f, indent=2)
    with open(os.path.join(folder, name + ".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["action", "p1_mm", "p2_mm", "mpjve_mm", "frames"])
        for action, row in errors["actions"].items():
            writer.writerow([action, "%.4f" % row["p1"], "%.4f" % row["p2"],
                             "%.4f" % row["mpjve"], row["frames"]])
        for action in errors["missing"]:
            writer.writerow([action, "", "", "", 0])
        average = errors["average"]
        writer.writerow(["average", "%.4f" % average["p1"], "%.4f" % average["p2"],
                         "%.4f" % average["mpjve"], average["frames"]])


# ----------------------------------------------------------------------------------------------
# Training

def autocast(config, device):
    if not config.train.amp:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def all_ranks_finite(loss, processes):
    """True when the loss is finite on every process (so all skip a bad step together)."""
    finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
    if processes.distributed:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def seed_epoch(seed, epoch, rank):
    """Global RNG (drop path) from (seed, epoch, rank): a resumed run draws what the
    uninterrupted one would have."""
    torch.manual_seed(seed * 100003 + epoch * 1009 + rank)


def train_one_epoch(model, loader, optimizer, config, epoch, processes, writer=None,
                    global_step=0):
    """One pass over the training split; returns statistics and the new global step."""
    model.train()
    seed_epoch(config.seed, epoch, processes.rank)
    flip_generator = torch.Generator().manual_seed(config.seed * 7919 + epoch * 31 + processes.rank)
    backbone = config.model.backbone.type
    grad_clip = config.loss.grad_clip
    parameters = [p for g in optimizer.param_groups for p in g["params"]]
    max_steps = config.train.max_steps_per_epoch
    total = len(loader) if max_steps <= 0 else min(max_steps, len(loader))
    loss_sum, steps, skipped, samples = 0.0, 0, 0, 0
    start = time.time()
    bar = tqdm(total=total, desc="epoch %d" % epoch, disable=not processes.is_main,
               dynamic_ncols=True)
    for step, batch in enumerate(loader):
        if step >= total:
            break
        flip = (config.train.flip_augmentation
                and torch.rand(1, generator=flip_generator).item() < 0.5)  # one draw per batch
        images, keypoints_2d, keypoints_2d_crop, target = prepare_batch(
            batch, backbone, processes.device, flip=flip)
        with autocast(config, processes.device):
            prediction = model(images, keypoints_2d, keypoints_2d_crop)
        loss = mpjpe(prediction.float(), target)
        optimizer.zero_grad(set_to_none=True)
        if not all_ranks_finite(loss, processes):  # a NaN batch is not stepped (docs/fidelity.md)
            skipped += 1
            logger.warning("epoch %d step %d: non-finite loss, step skipped (%d so far)",
                           epoch, step, skipped)
            bar.update(1)
            continue
        loss.backward()
        if grad_clip > 0:  # the released threshold: over the INITIAL lr, not the decayed one
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip / config.train.volume_net_lr)
        optimizer.step()

        batch_size = len(images) * processes.world_size
        samples += batch_size
        steps += 1
        global_step += 1
        loss_value = loss.item()
        loss_sum += loss_value
        rate = samples / max(time.time() - start, 1e-9)
        bar.set_postfix(loss="%.4f" % loss_value, samples_per_s="%.1f" % rate)
        bar.update(1)
        if writer is not None and global_step % config.train.log_every == 0:
            writer.add_scalar("train/loss", loss_value, global_step)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], global_step)
            writer.add_scalar("train/samples_per_s", rate, global_step)
    bar.close()
    elapsed = time.time() - start
    stats = {"loss": loss_sum / max(steps, 1), "steps": steps, "skipped_steps": skipped,
             "samples_per_s": samples / max(elapsed, 1e-9), "seconds": elapsed}
    return stats, global_step


def log_validation_samples(writer, dataset, predictions, targets, epoch, count=4):
    """A few validation frames (crop + 2D joints + 3D prediction vs truth) to TensorBoard."""
    from mvn import vis
    indices = np.linspace(0, len(predictions) - 1, num=min(count, len(predictions))).astype(int)
    for slot, index in enumerate(indices):
        panel = vis.sample_panel(dataset.load_crop(index), dataset.labels.keypoints_2d_crop[index],
                                 predictions[index].numpy(), targets[index].numpy(),
                                 title="frame %d" % index)
        writer.add_image("val/sample_%d" % slot, panel, epoch, dataformats="HWC")


def best_epoch_rule(p1_mm, best_p1_mm):
    """(is this epoch the best?, the new best) as the released loop decides: the average P1
    rounded to 0.1 mm, compared with a strict `<` (a tie keeps the earlier epoch)."""
    rounded = round(np.float64(p1_mm), 1)
    if rounded < best_p1_mm:
        return True, float(rounded)
    return False, best_p1_mm


def fit(config, processes, logdir, resume=None):
    """Train for config.train.n_epochs, evaluating after every epoch; returns the folder."""
    from torch.utils.tensorboard import SummaryWriter
    from mvn.datasets import build_dataset

    configure_tf32(config)
    start_epoch, best_p1, history = 0, float("inf"), []
    if resume:
        resume_path = find_resume_checkpoint(resume)
        folder = os.path.dirname(os.path.dirname(os.path.abspath(resume_path)))
    else:
        folder = make_experiment_folder(logdir, config.title, processes.is_main)
    setup_logging(folder, processes.is_main)
    if processes.is_main:
        with open(os.path.join(folder, "config.yaml"), "w") as f:
            f.write(config_to_yaml(config))
    logger.info("experiment folder: %s (%d process(es), device %s)",
                folder, processes.world_size, processes.device)

    train_set = build_dataset(config, "train")
    val_set = build_dataset(config, "val")
    logger.info("train: %d frames, val: %d frames", len(train_set), len(val_set))

    torch.manual_seed(config.seed)
    model = apply_channels_last(build_training_model(config).to(processes.device), config)
    optimizer = make_optimizer(model, config)
    if resume:
        checkpoint = load_model_weights(model, resume_path)
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch = checkpoint["epoch"]  # epochs done = the next epoch, 0-based
        best_p1 = checkpoint.get("best_p1", float("inf"))
        history = list(checkpoint.get("history", []))
        logger.info("resumed from %s at epoch %d", resume_path, start_epoch)

    ddp_model = model
    if processes.distributed:
        device_ids = [processes.local_rank] if processes.device.type == "cuda" else None
        ddp_model = DistributedDataParallel(model, device_ids=device_ids)
    train_model = torch.compile(ddp_model) if config.train.compile else ddp_model

    sampler = DistributedSampler(train_set, num_replicas=processes.world_size,
                                 rank=processes.rank, shuffle=True, seed=config.seed)
    loader = make_loader(train_set, config.train.batch_size, config, processes.device,
                         sampler=sampler)
    writer = SummaryWriter(os.path.join(folder, "tensorboard")) if processes.is_main else None
    global_step = start_epoch * min(len(loader), config.train.max_steps_per_epoch or len(loader))

    for epoch in range(start_epoch, config.train.n_epochs):
        sampler.set_epoch(epoch)
        lr = set_learning_rate(optimizer, config, epoch)  # x lr_decay per finished epoch
        stats, global_step = train_one_epoch(train_model, loader, optimizer, config, epoch,
                                             processes, writer, global_step)
        errors, predictions, targets = evaluate(model, val_set, config, processes)
        p1, p2 = errors["average"]["p1"], errors["average"]["p2"]
        is_best, best_p1 = best_epoch_rule(p1, best_p1)
        history.append({"epoch": epoch, "loss": stats["loss"], "p1": p1, "p2": p2,
                        "skipped_steps": stats["skipped_steps"],
                        "samples_per_s": stats["samples_per_s"]})
        logger.info("epoch %d: loss %.4f, val P1 %.2f mm, P2 %.2f mm, %.1f samples/s, "
                    "%d skipped step(s)%s", epoch, stats["loss"], p1, p2,
                    stats["samples_per_s"], stats["skipped_steps"], " (best)" if is_best else "")
        if processes.is_main:
            writer.add_scalar("val/p1_mm", p1, epoch)
            writer.add_scalar("val/p2_mm", p2, epoch)
            writer.add_scalar("train/epoch_loss", stats["loss"], epoch)
            writer.add_scalar("train/epoch_samples_per_s", stats["samples_per_s"], epoch)
            if config.train.vis_every_epoch:
                log_validation_samples(writer, val_set, predictions, targets, epoch)
            if is_best:
                save_table(errors, folder, "best_evaluation")
            save_checkpoints(folder, model, optimizer, epoch + 1, lr, best_p1, history, is_best)
            writer.flush()
        if processes.distributed:
            dist.barrier()
    if writer is not None:
        writer.close()
    if processes.is_main and history:
        logger.info("best val P1 %.1f mm; checkpoints in %s", best_p1,
                    os.path.join(folder, "checkpoints"))
    return folder


def run_evaluation(config, processes, logdir, checkpoint_path, split="val"):
    """--eval: load a checkpoint, print and save the per-action table (and best/worst frames)."""
    from mvn.datasets import build_dataset

    configure_tf32(config)
    folder = make_experiment_folder(logdir, config.title, processes.is_main, suffix="_eval")
    setup_logging(folder, processes.is_main)
    model = build_model(config)
    checkpoint = load_model_weights(model, checkpoint_path)
    logger.info("checkpoint %s (epoch %s)", checkpoint_path, checkpoint.get("epoch", "?"))
    apply_channels_last(model.to(processes.device), config)
    dataset = build_dataset(config, split)
    logger.info("evaluating on the %s split: %d frames, flip test %s", split, len(dataset),
                "on" if config.val.flip_test else "off")
    errors, predictions, targets = evaluate(model, dataset, config, processes)
    if processes.is_main:
        logger.info("per-action errors (mm):\n%s", format_table(errors))
        save_table(errors, folder)
        with open(os.path.join(folder, "config.yaml"), "w") as f:
            f.write(config_to_yaml(config))
        save_best_worst(os.path.join(folder, "best_worst_frames.png"), dataset, predictions,
                        targets)
        logger.info("results in %s", folder)
    return errors, folder


def save_best_worst(path, dataset, predictions, targets):
    """PNG of the best and the worst frame of every action (by per-frame P1)."""
    from mvn import vis
    errors_mm = mpjpe(predictions.numpy(), targets.numpy(), reduce=False) * 1000  # (N,)
    actions = dataset.labels.action[:len(predictions)]
    chosen = set()
    for action in np.unique(actions):
        index = np.flatnonzero(actions == action)
        chosen.update([int(index[np.argmin(errors_mm[index])]),
                       int(index[np.argmax(errors_mm[index])])])
    chosen = np.array(sorted(chosen))
    images = np.stack([dataset.load_crop(i) for i in chosen])
    vis.save_best_worst_per_action(path, images, dataset.labels.keypoints_2d_crop[chosen],
                                   predictions[chosen].numpy(), targets[chosen].numpy(),
                                   errors_mm[chosen], actions[chosen])
    return path
