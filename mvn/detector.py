"""Stage 1: the 2D heatmap pose detector whose backbone CA-PF freezes, trained on the labelled
crops by the same run machinery as CA-PF (`train.py` with `task: detector`; mvn.engine.fit).

The public HRNet pose recipe (its COCO W32 256x192 experiment; docs/fidelity.md, "Additions"):
an HRNet with `final_layer` (a 1x1 convolution from features[0]) giving one heatmap per joint at
a quarter of the crop; Gaussian targets and the weighted mean-squared loss (mvn.heatmaps); Adam
without weight decay, the lr x 0.1 at detector.lr_steps; random horizontal flips (per sample);
the flip test and argmax + quarter-pixel decoding at evaluation. Scored in full-frame pixels
(mean joint error, PCK; mvn.metrics_2d) per group of the benchmark.

Its best epoch also writes `checkpoints/backbone.pth`: the network's state dict in the published
HRNet file's layout (backbone keys, then `final_layer.*`), which `model.backbone.pretrained`
takes as CA-PF's frozen backbone, exactly as it takes `pose_hrnet_w32_256x192.pth`.
"""
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from mvn import benchmarks
from mvn.batch import mirror_x, prepare_images
from mvn.checkpoint import CHECKPOINT_FOLDER, atomic_save, save_best
from mvn.coco import HEAD_PREFIX, decode_heatmaps, heatmap_to_crop_px
from mvn.distributed import all_ranks_finite
from mvn.engine import Task, best_epoch_rule, predict_in_shards
from mvn.errors import CAPFError
from mvn.geometry import apply_affines
from mvn.heatmaps import flip_test_heatmaps, heatmap_loss, heatmap_targets
from mvn.metrics_2d import format_table_2d, joint_errors_px, save_table_2d, table_2d
from mvn.models.backbones import BACKBONES
from mvn.models.capf import build_backbone
from mvn.models.weights import check_state_dict, extract_state_dict, load_backbone_weights, \
    read_weights_file
from mvn.recipe import autocast, resolve_pretrained_path

logger = logging.getLogger(__name__)

BACKBONE_FILE = "backbone.pth"  # in the run's checkpoints/: model.backbone.pretrained takes it


class HeatmapDetector(nn.Module):
    """An HRNet backbone and its heatmap head `final_layer` (the published file's layout):
    (B, 256, 192, 3) prepared crops -> (B, J, 64, 48) heatmaps."""

    def __init__(self, backbone, num_joints=17):
        super().__init__()
        self.backbone = backbone
        self.final_layer = nn.Conv2d(backbone.feature_channels[0], num_joints, 1)
        nn.init.normal_(self.final_layer.weight, std=0.001)  # as the recipe initialises it
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, images):
        features = self.backbone(images.permute(0, 3, 1, 2).contiguous())  # 4 maps
        return self.final_layer(features[0])  # (B, J, 64, 48)


def backbone_file_state(model):
    """The detector's weights as a published HRNet file holds them: backbone keys without a
    prefix, then `final_layer.weight` / `final_layer.bias`."""
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    state = dict(raw.backbone.state_dict())
    state.update({HEAD_PREFIX + k: v for k, v in raw.final_layer.state_dict().items()})
    return state


def check_backbone_type(config):
    """The detector needs a backbone whose published file has the `final_layer.` head."""
    backbone_type = config.model.backbone.type
    if HEAD_PREFIX not in BACKBONES[backbone_type].head_prefixes:
        raise CAPFError("task: detector trains an HRNet with its heatmap head; model.backbone.type "
                        "'%s' has none: use one of %s" % (backbone_type, ", ".join(
                            name for name, row in BACKBONES.items()
                            if HEAD_PREFIX in row.head_prefixes)))
    return backbone_type


def build_detector(config):
    """The HeatmapDetector of config.model.backbone.type (random weights; no files read)."""
    skeleton = benchmarks.get(config.dataset.name).skeleton
    return HeatmapDetector(build_backbone(check_backbone_type(config)),
                           len(skeleton.flip_permutation))


# ----------------------------------------------------------------------------------------------
# Task functions (mvn.engine.Task)

class DetectorSamples(Dataset):
    """A benchmark dataset's samples with their ground-truth 2D joints in crop pixels
    ('keypoints_2d_truth_crop', (17, 2)); `crop_to_frame` (N, 2, 3) maps crop pixels back to
    the frame (the benchmark's `truth_2d`)."""

    def __init__(self, dataset, truth_crop_px, crop_to_frame):
        self.dataset = dataset
        self.labels = dataset.labels
        self.labels_path = getattr(dataset, "labels_path", None)
        self.truth_crop_px = np.asarray(truth_crop_px, np.float32)
        self.crop_to_frame = crop_to_frame

    def __len__(self):
        return len(self.dataset)

    def load_crop(self, index):
        return self.dataset.load_crop(index)

    def __getitem__(self, index):
        sample = self.dataset[index]
        sample["keypoints_2d_truth_crop"] = torch.from_numpy(self.truth_crop_px[index])
        return sample


def build_split(benchmark, config, split):
    if benchmark.truth_2d is None:
        raise CAPFError("the %s benchmark gives no ground-truth 2D joints: task: detector "
                        "cannot train on it" % benchmark.name)
    dataset = benchmark.build_dataset(config, split)
    return DetectorSamples(dataset, *benchmark.truth_2d(dataset))


def build_model(config, device):
    """The detector to train: the backbone from model.backbone.pretrained (the published COCO
    file by default: fine-tuning; 'none': from scratch), a new heatmap head."""
    model = build_detector(config)
    path = resolve_pretrained_path(config)
    if path is None:
        logger.warning("model.backbone.pretrained is none: the detector trains from scratch")
    elif not os.path.isfile(path):
        raise CAPFError("the detector's starting backbone %s not found: download the published "
                        "file into data/pretrained/ (see README), set model.backbone.pretrained "
                        "to a file, or to none to train from scratch" % path)
    else:
        dropped = load_backbone_weights(model.backbone, path,
                                        BACKBONES[config.model.backbone.type].head_prefixes)
        logger.info("detector backbone from %s (fine-tuning; its %d head keys left out: the "
                    "heatmap head starts anew)", path, len(dropped))
    return model.to(device)


def load_detector_weights(model, path):
    """Load into a HeatmapDetector a detector run's checkpoint (best_epoch.bin / last.bin), its
    backbone.pth, or a published HRNet COCO file (the same layout); returns the loaded dict."""
    checkpoint = read_weights_file(path)
    state_dict = extract_state_dict(checkpoint, path)
    if not any(k.startswith("backbone.") for k in state_dict):  # the published layout
        state_dict = {k if k.startswith(HEAD_PREFIX) else "backbone." + k: v
                      for k, v in state_dict.items()}
    check_state_dict(model, state_dict, path, what="2D detector")
    model.load_state_dict(state_dict, strict=True)
    return checkpoint


def load_for_evaluation(config, checkpoint_path, device):
    """A detector checkpoint (best_epoch.bin / last.bin of a detector run, or its backbone.pth)."""
    model = build_detector(config)
    checkpoint = load_detector_weights(model, checkpoint_path)
    return model.to(device), checkpoint if "epoch" in checkpoint else {}


def make_optimizer(model, config):
    """Adam over every parameter at detector.lr, no weight decay (the recipe)."""
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                            lr=config.detector.lr)


def learning_rate(config, epoch):
    """detector.lr x lr_factor for every step in detector.lr_steps at or before `epoch`."""
    lr = config.detector.lr
    for step in config.detector.lr_steps:
        if epoch >= step:
            lr *= config.detector.lr_factor
    return lr


def set_learning_rate(optimizer, config, epoch):
    lr = learning_rate(config, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def prepare_detector_batch(batch, config, device):
    """(prepared images (B, 256, 192, 3), ground-truth joints (B, 17, 2) crop pixels)."""
    non_blocking = device.type == "cuda"
    images = prepare_images(batch["images"].to(device, non_blocking=non_blocking),
                            config.model.backbone.type)
    joints = batch["keypoints_2d_truth_crop"].to(device, torch.float32, non_blocking=non_blocking)
    return images, joints


def train_step(model, optimizer, batch, config, processes, flip_generator):
    """One step: each sample mirrored with probability 1/2 (train.flip_augmentation), Gaussian
    targets, the weighted heatmap loss, Adam. Returns the loss, or None if it was not finite
    on some process (the step is skipped on all, as CA-PF's)."""
    skeleton = benchmarks.get(config.dataset.name).skeleton
    images, joints = prepare_detector_batch(batch, config, processes.device)
    if config.train.flip_augmentation:
        flip = (torch.rand(len(images), generator=flip_generator) < 0.5).to(processes.device)
        mirrored = mirror_x(joints, images.shape[2] - 1.0, skeleton=skeleton)
        images = torch.where(flip[:, None, None, None], images.flip(2), images)
        joints = torch.where(flip[:, None, None], mirrored, joints)
    with autocast(config, processes.device):
        heatmaps = model(images)  # (B, 17, 64, 48)
    targets, weights = heatmap_targets(joints, config.detector.sigma_px,
                                       tuple(heatmaps.shape[-2:]), tuple(images.shape[1:3]))
    loss = heatmap_loss(heatmaps.float(), targets, weights)
    optimizer.zero_grad(set_to_none=True)
    if not all_ranks_finite(loss, processes):
        return None
    loss.backward()
    optimizer.step()
    return loss.detach()


def detect(model, images, flip_permutation=None):
    """(B, 256, 192, 3) prepared crops -> (B, J, 2) joints in crop pixels (float32): with the
    flip test when `flip_permutation` (the heatmaps' left/right exchange) is given, argmax + a
    quarter pixel, x 4."""
    if flip_permutation is not None:
        heatmaps = flip_test_heatmaps(model, images, flip_permutation)
    else:
        heatmaps = model(images)
    coords, _ = decode_heatmaps(heatmaps.float())
    return heatmap_to_crop_px(coords, tuple(heatmaps.shape[-2:]), tuple(images.shape[1:3]))


@dataclass
class Evaluation2D:
    """A detector's evaluation: the averages the loop logs and picks the best epoch by, and the
    per-group table (mvn.metrics_2d)."""
    mean_px: float                  # mean joint error, full-frame pixels, every frame
    pck: float                      # share of joints within tables['pck_threshold_px']
    frames: int
    frame_errors_px: np.ndarray     # (N,) each frame's mean joint error
    predictions: torch.Tensor       # (N, 17, 2) crop pixels
    tables: dict


def evaluate(model, dataset, config, processes, stop=None):
    """(Evaluation2D, ground truth (N, 17, 2) crop pixels), the same on every rank (`stop`: see
    mvn.engine.predict_in_shards)."""
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    raw.eval()
    benchmark = benchmarks.get(config.dataset.name)

    def predict_batch(batch):
        images, joints = prepare_detector_batch(batch, config, processes.device)
        with autocast(config, processes.device):
            flips = benchmark.skeleton.flip_permutation if config.val.flip_test else None
            return detect(raw, images, flips), joints

    with torch.no_grad():
        predictions, truth = predict_in_shards(dataset, config, processes, predict_batch, (17, 2),
                                               stop=stop)
    n = len(predictions)
    affines = dataset.crop_to_frame[:n]
    errors = joint_errors_px(apply_affines(predictions.numpy(), affines),
                             apply_affines(truth.numpy(), affines))  # (N, 17)
    groups, names = benchmark.picture_groups(dataset.dataset)
    table = table_2d(errors, groups[:n], names, config.detector.pck_threshold_px)
    average = table["average"]
    return Evaluation2D(average["mean_px"], average["pck"], n, errors.mean(-1), predictions,
                        table), truth


def save_backbone_file(folder, model):
    """checkpoints/backbone.pth: the detector in the published HRNet file's layout."""
    directory = os.path.join(folder, CHECKPOINT_FOLDER)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, BACKBONE_FILE)
    atomic_save(backbone_file_state(model), path)
    return path


def end_of_epoch(run, epoch, lr, stats, evaluation, writer, val_set, targets, benchmark):
    """The epoch's record; the best epoch (lowest mean error, not rounded): its table,
    best_epoch.bin and backbone.pth; TensorBoard; last.bin."""
    is_best, run.best_p1 = best_epoch_rule(evaluation.mean_px, run.best_p1, 0)
    threshold = evaluation.tables["pck_threshold_px"]
    run.history.append({"epoch": epoch, "loss": stats["loss"], "mean_px": evaluation.mean_px,
                        "pck": evaluation.pck, "skipped_steps": stats["skipped_steps"],
                        "samples_per_s": stats["samples_per_s"]})
    logger.info("epoch %d: loss %.6f, val 2D error %.2f px, PCK@%gpx %.1f%%, %.1f samples/s, "
                "%d skipped step(s)%s", epoch, stats["loss"], evaluation.mean_px, threshold,
                100 * evaluation.pck, stats["samples_per_s"], stats["skipped_steps"],
                " (best)" if is_best else "")
    if run.processes.is_main:
        writer.add_scalar("val/error_px", evaluation.mean_px, epoch)
        writer.add_scalar("val/pck", evaluation.pck, epoch)
        writer.add_scalar("train/epoch_loss", stats["loss"], epoch)
        writer.add_scalar("train/epoch_samples_per_s", stats["samples_per_s"], epoch)
        if is_best:
            save_table_2d(evaluation.tables, run.folder, "best_evaluation")
            save_best(run.folder, run.model, run.optimizer, epoch + 1, lr)
            save_backbone_file(run.folder, run.model)
        writer.flush()
    run.save_last(epoch + 1, 0, lr)


def describe_best(run):
    return "best val 2D error %.2f px (backbone file %s)" % (
        run.best_p1, os.path.join(run.folder, CHECKPOINT_FOLDER, BACKBONE_FILE))


def report(evaluation, targets, dataset, folder, benchmark):
    logger.info("2D errors (full-frame pixels):\n%s", format_table_2d(evaluation.tables))
    save_table_2d(evaluation.tables, folder, "evaluation")


TASK = Task(build_split=build_split, build_model=build_model,
            load_for_evaluation=load_for_evaluation, make_optimizer=make_optimizer,
            set_learning_rate=set_learning_rate, train_step=train_step, evaluate=evaluate,
            end_of_epoch=end_of_epoch, describe_best=describe_best, report=report)
