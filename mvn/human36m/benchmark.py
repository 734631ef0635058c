"""Human3.6M behind the mvn.benchmark interface: its skeleton, datasets (label files + frames,
or the frame store), the per-action protocol and the published checkpoint."""
import os

import numpy as np

from mvn import geometry
from mvn.benchmark import Benchmark, Evaluation, split_files
from mvn.errors import CAPFError
from mvn.geometry import crop_to_frame_affines
from mvn.human36m.dataset import Human36MDataset, Human36MStoreDataset
from mvn.human36m import facts as h36m
from mvn.human36m.facts import ACTION_NAMES, SKELETON
from mvn.human36m.protocol import format_table, per_action_errors, save_table
from mvn.metrics import mpjpe

PUBLISHED_CHECKPOINT = os.path.join("checkpoint", "best_epoch.bin")


def build_dataset(config, split):
    d = config.dataset
    labels_path, stride = split_files(config, split)
    if d.format == "store":  # the store holds its own labels (made from the label files)
        if d.keypoints_2d != "cpn":
            raise CAPFError("dataset.keypoints_2d '%s' needs dataset.format pkl: the frame store "
                            "holds the CPN joints of the label files it was made from"
                            % d.keypoints_2d)
        return Human36MStoreDataset(d.store_path, split, frame_stride=stride)
    return Human36MDataset(d.root, labels_path, frame_stride=stride, bad_records=d.bad_records,
                           allow_images_outside_root=d.allow_images_outside_root,
                           keypoints_2d=d.keypoints_2d)


def evaluate(predictions, targets, dataset, config):
    """The per-action table of predictions and targets (N, 17, 3) metres, in the dataset's
    order (fewer than the dataset with val.max_batches)."""
    n = len(predictions)
    predicted_m, target_m = predictions.numpy(), targets.numpy()
    table = per_action_errors(predicted_m, target_m, dataset.labels.action[:n],
                              dataset.labels.subaction[:n])
    average = table["average"]
    return Evaluation(average["p1"], average["p2"], average["frames"],
                      mpjpe(predicted_m, target_m, reduce=False) * 1000, predictions, table)


def format_evaluation(evaluation):
    return "per-action errors (mm):\n" + format_table(evaluation.tables)


def save_evaluation(evaluation, folder, name):
    """folder/<name>.json and .csv: the per-action table."""
    return save_table(evaluation.tables, folder, name)


def picture_groups(dataset):
    return dataset.labels.action, ACTION_NAMES


def published_checkpoint(backbone_type):
    """checkpoint/best_epoch.bin (mvn.checkpoint.find_checkpoint also finds
    best_epoch_<backbone>.bin)."""
    return PUBLISHED_CHECKPOINT


def frame_size_px(dataset, indices):
    """(B, 2) [width, height] of each sample's camera: its 2D joints were normalised with it."""
    sizes = np.array([h36m.resolution(c) for c in range(len(h36m.CAMERA_IDS))], np.float64)
    return sizes[dataset.labels.camera_id[np.asarray(indices)]]


def crop_affine(dataset, indices):
    """(B, 2, 3): each sample's full frame -> crop matrix from its label's centre and scale, the
    matrix its crop keypoints were made with (mvn.geometry.get_affine_transform)."""
    labels = dataset.labels
    return np.stack([geometry.get_affine_transform(labels.center[i], labels.scale[i])
                     for i in np.asarray(indices)]).astype(np.float64)


def ground_truth_2d_px(dataset, indices):
    """(B, 17, 2) ground-truth 2D joints in full-frame pixels: each sample's 3D joints (camera
    frame) projected with its camera's calibration and distortion (mvn.geometry.project_to_2d,
    the camera model the dataset's own 2D poses follow). The label files' `joints_2d_gt` holds
    the dataset's 2D poses too; the loaded columns keep the CPN detections only."""
    labels = dataset.labels
    indices = np.asarray(indices)
    result = np.zeros((len(indices), 17, 2))
    subjects, cameras = labels.subject[indices], labels.camera_id[indices]
    for subject, camera_index in sorted(set(zip(subjects.tolist(), cameras.tolist()))):
        rows = np.flatnonzero((subjects == subject) & (cameras == camera_index))
        camera = h36m.camera(subject, camera_index)
        joints_mm = labels.keypoints_3d[indices[rows]].astype(np.float64) * 1000  # (n, 17, 3)
        result[rows] = geometry.project_to_2d(joints_mm, camera["f"], camera["c"], camera["k"],
                                              camera["p"])
    return result


def averaging_groups(dataset):
    """The table's P1 is the mean of the actions' means."""
    return dataset.labels.action


def truth_2d(dataset):
    """The labels' ground-truth 2D joints in crop pixels (`joints_2d_gt_crop`) and each crop's
    map back to the frame (from its box centre and scale)."""
    labels = dataset.labels
    if labels.keypoints_2d_truth_crop is None:
        raise CAPFError("%s holds no ground-truth 2D joints (joints_2d_gt_crop), which the 2D "
                        "detector trains on: regenerate the labels with "
                        "H36M-Toolbox/generate_labels_h36m.py (and the store from them)"
                        % (getattr(dataset, "labels_path", None)
                           or getattr(dataset, "path", "the labels")))
    return labels.keypoints_2d_truth_crop, crop_to_frame_affines(labels.center, labels.scale)


BENCHMARK = Benchmark(
    name="human36m", skeleton=SKELETON, unit_mm=1000.0, build_dataset=build_dataset,
    evaluate=evaluate, format_evaluation=format_evaluation, save_evaluation=save_evaluation,
    picture_groups=picture_groups, published_checkpoint=published_checkpoint,
    frame_size_px=frame_size_px, crop_affine=crop_affine, ground_truth_2d_px=ground_truth_2d_px,
    averaging_groups=averaging_groups,
    truth_2d=truth_2d)
