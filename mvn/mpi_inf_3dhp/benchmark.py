"""MPI-INF-3DHP behind the mvn.benchmark interface: its skeleton, datasets (label files + crops,
or the frame store; the val split is the test set, as in the released code), the released
number with the official PCK / AUC tables, and the published checkpoints."""
import os

import numpy as np

from mvn.benchmark import Benchmark, Evaluation, split_files
from mvn.errors import CAPFError
from mvn.geometry import apply_affines, crop_to_frame_affines
from mvn.mpi_inf_3dhp import protocol
from mvn.mpi_inf_3dhp.dataset import MpiInf3dhpDataset, MpiInf3dhpStoreDataset
from mvn.mpi_inf_3dhp import facts as mpi
from mvn.mpi_inf_3dhp.facts import PUBLISHED_CHECKPOINTS, SKELETON


def build_dataset(config, split):
    d = config.dataset
    labels_path, stride = split_files(config, split)
    if d.format == "store":  # the store holds its own labels (made from the label files)
        if d.keypoints_2d != "cpn":
            raise CAPFError("dataset.keypoints_2d '%s' needs dataset.format pkl: the frame store "
                            "holds the ground-truth 2D joints of the label files it was made "
                            "from" % d.keypoints_2d)
        return MpiInf3dhpStoreDataset(d.store_path, split, frame_stride=stride)
    # 'cpn': the ground-truth 2D joints (the released input); NAME: detect_2d_3dhp.py's
    return MpiInf3dhpDataset(d.root, labels_path, split, frame_stride=stride,
                             keypoints_2d=d.keypoints_2d)


def evaluate(predictions, targets, dataset, config):
    """The released number and the official tables (mvn.mpi_inf_3dhp.protocol) of predictions
    and targets (N, 17, 3) mm of the test split."""
    tables, scored = protocol.evaluate_predictions(predictions, targets, dataset.labels,
                                                   config.val.root_in_mpjpe)
    frame_errors_mm = np.linalg.norm(scored.double().numpy() - targets.double().numpy(),
                                     axis=-1).mean(-1)  # (N,)
    average = tables["average"]
    return Evaluation(average["p1"], average["p2"], average["frames"], frame_errors_mm, scored,
                      tables)


def format_evaluation(evaluation):
    return "MPI-INF-3DHP test set:\n" + protocol.format_evaluation(evaluation.tables)


def save_evaluation(evaluation, folder, name):
    """folder/<name>/: the official tables and inference_data.mat."""
    return protocol.save_evaluation(evaluation.tables, os.path.join(folder, name))


def picture_groups(dataset):
    """Test sequences TS1..TS6 (training: subject x 10 + sequence, e.g. S1 Seq2 = 12)."""
    sequences = dataset.labels.sequence
    names = {int(k): ("TS%d" % k if k < 10 else "S%d Seq%d" % divmod(int(k), 10))
             for k in np.unique(sequences)}
    return sequences, names


def published_checkpoint(backbone_type):
    name = PUBLISHED_CHECKPOINTS.get(backbone_type)
    if name is None:
        raise CAPFError("no published MPI-INF-3DHP checkpoint for backbone '%s': pass "
                        "--checkpoint PATH" % backbone_type)
    return os.path.join("checkpoint", name)


def frame_size_px(dataset, indices):
    """(B, 2) [width, height] the released loader normalises with: 2048x2048 for training
    frames and TS1-4, 1920x1080 for TS5-6 (QUIRK Q10)."""
    labels = dataset.labels
    indices = np.asarray(indices)
    sizes = np.zeros((len(indices), 2))
    test = labels.camera[indices] < 0
    sizes[~test] = mpi.TRAIN_RESOLUTION
    for row in np.flatnonzero(test):
        sizes[row] = mpi.sequence_resolution("TS%d" % labels.sequence[indices[row]])
    return sizes


def input_2d_px(dataset, indices):
    """(B, 17, 2) the samples' 2D input joints in full-frame pixels."""
    width, height = frame_size_px(dataset, indices).T[:, :, None, None]       # (B, 1, 1) each
    screen = dataset.labels.keypoints_2d[np.asarray(indices)].astype(np.float64)  # (B, 17, 2)
    offset = np.concatenate([np.ones_like(width), height / width], -1)        # (B, 1, 2)
    return (screen + offset) * width / 2   # mvn.geometry.image_coordinates, per-sample size


def crop_affine(dataset, indices):
    """(B, 2, 3): each sample's full frame -> crop matrix. The crop boxes come from the absolute
    pelvis, which the labels do not keep (the 3D joints are pelvis-relative), so the matrix is
    recovered from the sample's own 17 pairs (full-frame joint, crop joint): the crop is a
    uniform zoom s and a shift t (mvn.geometry.get_affine_transform has no rotation), fitted by
    least squares; the pairs agree with it to the labels' float32 rounding."""
    source = input_2d_px(dataset, indices)                                       # (B, 17, 2)
    target = dataset.labels.keypoints_2d_crop[np.asarray(indices)].astype(np.float64)
    source_c = source - source.mean(1, keepdims=True)
    target_c = target - target.mean(1, keepdims=True)
    s = (source_c * target_c).sum((1, 2)) / (source_c ** 2).sum((1, 2))          # (B,)
    t = target.mean(1) - s[:, None] * source.mean(1)                             # (B, 2)
    affine = np.zeros((len(s), 2, 3))
    affine[:, 0, 0] = affine[:, 1, 1] = s
    affine[:, :, 2] = t
    return affine


def ground_truth_2d_px(dataset, indices):
    """(B, 17, 2) the ground truth annot2 in full-frame pixels: the labels' ground-truth crop
    joints mapped back through each crop's box. Labels without those columns (a store built
    before them) hold the ground truth as their 2D inputs (the store takes no detections):
    their own pixels."""
    labels = dataset.labels
    if getattr(labels, "keypoints_2d_truth_crop", None) is None:
        return input_2d_px(dataset, indices)
    indices = np.asarray(indices)
    return apply_affines(labels.keypoints_2d_truth_crop[indices],
                         crop_to_frame_affines(labels.center[indices], labels.scale[indices]))


def truth_2d(dataset):
    """The ground-truth 2D joints (annot2) in the pixels of each crop image and each crop's map
    back to the frame (its box). For the released training labels of cameras 4..8 these are not
    data_2d_crop, which QUIRK Q2 maps with another camera's intrinsics than the image's."""
    labels = dataset.labels
    if labels.keypoints_2d_truth_crop is None:
        raise CAPFError("%s holds no ground-truth 2D joints in crop pixels (labels/"
                        "keypoints_2d_truth_crop), which the 2D detector trains on: rebuild the "
                        "store with MPI-INF-3DHP-Toolbox/prepare_store_3dhp.py --overwrite"
                        % getattr(dataset, "path", "the frame store"))
    return labels.keypoints_2d_truth_crop, crop_to_frame_affines(labels.center, labels.scale)


def extra_scores(evaluation):
    """The official frame-weighted PCK (150 mm), AUC and MPJPE of all test frames."""
    overall = evaluation.tables["mpi_inf_3dhp"].overall
    return {"pck": overall["pck"], "auc": overall["auc"], "mpjpe_mm": overall["mpjpe_mm"]}


BENCHMARK = Benchmark(
    name="mpi_inf_3dhp", skeleton=SKELETON, unit_mm=1.0, build_dataset=build_dataset,
    evaluate=evaluate, format_evaluation=format_evaluation, save_evaluation=save_evaluation,
    picture_groups=picture_groups, published_checkpoint=published_checkpoint,
    evaluable_splits=("val",), evaluable_splits_note="the test set",
    frame_size_px=frame_size_px, crop_affine=crop_affine, ground_truth_2d_px=ground_truth_2d_px,
    extra_scores=extra_scores, truth_2d=truth_2d)
