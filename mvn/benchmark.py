"""What the engine needs of a benchmark, and what evaluating on one gives back.

Each benchmark is a package (mvn/human36m/, mvn/mpi_inf_3dhp/) whose `benchmark.py` fills one
`Benchmark`; `mvn.benchmarks.get(name)` returns it. The engine, train.py and the config read a
benchmark only through this interface, so a new dataset is a new package and one line in
`mvn.benchmarks`.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from mvn.skeleton import Skeleton


def split_files(config, split):
    """(label file, frame stride) that `config.dataset` gives split 'train' or 'val'."""
    d = config.dataset
    if split == "train":
        return d.train_labels_path, d.train_frame_stride
    return d.val_labels_path, d.val_frame_stride


@dataclass
class Evaluation:
    """A benchmark's evaluation of predictions (N, 17, 3): the averages the training loop logs
    and selects the best epoch on, the per-frame error the pictures pick frames by, and the
    benchmark's own tables (its `format_evaluation` / `save_evaluation` read them)."""
    p1_mm: float                    # the benchmark's headline MPJPE (its own averaging)
    p2_mm: float                    # the same after a Procrustes alignment
    frames: int
    frame_errors_mm: np.ndarray     # (N,) MPJPE of each frame, as scored
    predictions: torch.Tensor       # (N, 17, 3) as scored (MPI-INF-3DHP: the root row zeroed)
    tables: dict                    # the benchmark's tables (JSON-able where it saves them so)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark behind one interface. Units: the dataset's 3D joints are in `unit_mm`
    millimetres (Human3.6M: metres, 1000; MPI-INF-3DHP: mm, 1)."""
    name: str
    skeleton: Skeleton
    unit_mm: float
    # (config, split 'train' | 'val') -> the LabelledCropDataset of that split
    build_dataset: Callable
    # (predictions (N, 17, 3), targets (N, 17, 3), dataset, config) -> Evaluation
    evaluate: Callable
    # Evaluation -> console text
    format_evaluation: Callable
    # (Evaluation, folder, name) -> what was written (files in `folder` named after `name`)
    save_evaluation: Callable
    # dataset -> (group id of each frame (N,), {id: name}): the rows of the best/worst picture
    picture_groups: Callable
    # backbone type -> the published checkpoint --eval uses by default (CAPFError if none)
    published_checkpoint: Callable
    # dataset -> (ground-truth 2D joints (N, 17, 2) in crop pixels, (N, 2, 3) matrices mapping
    # crop pixels to full-frame pixels): what the 2D detector stage (mvn/detector.py) trains on
    # and is scored in. None: the benchmark has none (the detector stage refuses it).
    truth_2d: Optional[Callable] = None
    # the splits `train.py --eval --eval_dataset` may score, and what they are, in words
    evaluable_splits: tuple = ("train", "val")
    evaluable_splits_note: str = "any split"
    # --- what the added evaluations (mvn/evaluations/) read; None: that evaluation refuses ---
    # (dataset, indices (B,)) -> (B, 2) float64 [width, height] in pixels of the full frame
    # each sample's 2D input joints were screen-normalised with
    frame_size_px: Callable = None
    # (dataset, indices (B,)) -> (B, 2, 3) float64: the full frame -> crop matrix of each
    # sample (its crop keypoints are this matrix times its full-frame 2D input joints)
    crop_affine: Callable = None
    # (dataset, indices (B,)) -> (B, 17, 2) float64 ground-truth 2D joints, full-frame pixels
    ground_truth_2d_px: Callable = None
    # dataset -> (N,) the group of each frame whose means the headline P1 averages with equal
    # weight (Human3.6M: the action); None: every frame weighs the same
    averaging_groups: Callable = None
    # Evaluation -> {name: value}: the benchmark's own scores beside P1 / P2 (e.g. PCK, AUC)
    extra_scores: Callable = None
